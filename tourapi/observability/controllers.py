"""GET /metrics: Prometheus text format, for operators and the holder of a scrape token."""

from __future__ import annotations

from typing import ClassVar

from litestar import Controller, Response, get

from tourapi.observability import metrics
from tourapi.runtime import Runtime
from tourapi.security.policies import Policy, access
from tourapi.web.deps import Dep


class MetricsController(Controller):
    path = metrics.METRICS_PATH
    tags: ClassVar[list[str]] = ["Operations"]

    @get(
        "/",
        **access(Policy.OPERATOR, metrics_scrape=True),  # the one route a scrape token may call
        media_type=metrics.CONTENT_TYPE,
        summary="Prometheus metrics (an operator's token, or a scrape token from `tourapi metrics-token`)",
    )
    async def scrape(self, runtime: Dep[Runtime]) -> Response[bytes]:
        return Response(
            await metrics.render(runtime),
            media_type=metrics.CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )
