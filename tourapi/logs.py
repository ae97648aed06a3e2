"""Structured logs: JSON in production, readable in development, a request id on every line.

Query strings and bodies are never logged: they can hold positions and tokens. As a second line of
defence every rendered line passes ``redact_secrets``: bearer tokens, JWTs and the bound parameters
that SQLAlchemy puts into its exception messages (which may hold positions) are masked.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from tourapi.settings import Settings

_SECRETS = (
    # SQLAlchemy appends "[parameters: (...)]" (one line) to statement errors: bound values, e.g. positions.
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: <redacted>]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer <redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "<jwt redacted>"),
)
# One access line per request, written by tourapi.web.edge.EdgeMiddleware.
access_log = structlog.get_logger("tourapi.access")
access_logger = logging.getLogger("tourapi.access")


def configure_logging(settings: Settings) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # tracebacks as text (no local variables), then redacted
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # httpx logs whole URLs with their query strings at INFO (the demo-traffic client, outbound calls).
    for noisy in ("sqlalchemy.engine", "aiosqlite", "asyncio", "granian.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask tokens and SQL parameters in the message, the traceback and any string value."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            for pattern, replacement in _SECRETS:
                value = pattern.sub(replacement, value)
            event_dict[key] = value
    return event_dict
