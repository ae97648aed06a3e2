"""Wires metrics and logging into the Litestar app (one plugin, registered in tourapi/app.py)."""

from __future__ import annotations

from typing import Any

from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin

from tourapi.observability import metrics
from tourapi.observability.controllers import MetricsController
from tourapi.web.edge import EdgeMiddleware


class ObservabilityPlugin(InitPlugin):
    """Adds /metrics, the edge middleware (request id, security headers, HTTP metrics, access log) and
    the ping counter; keeps the app's log setup.

    ``logging_config`` is set to None: Litestar's default logging config would replace the root
    logger's handler (configured by tourapi.logs.configure_logging) with its own plain-text one,
    which made production logs lose their JSON shape and request ids.
    """

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(MetricsController)
        # Outermost, before JWT auth (added by on_app_init, which runs before plugins): 401s are counted too.
        app_config.middleware.insert(0, EdgeMiddleware)
        app_config.after_request = _chain(app_config.after_request, metrics.count_pings)
        app_config.on_shutdown.append(metrics.mark_worker_dead)
        app_config.logging_config = None
        return app_config


def _chain(first: Any, second: Any) -> Any:
    if first is None:
        return second

    async def both(response: Any) -> Any:
        response = first(response)
        if hasattr(response, "__await__"):
            response = await response
        return await second(response)

    return both
