"""The one middleware every routed request passes: request id, security headers, HTTP metrics, access log.

One ``send`` wrapper instead of three: each wrapper is a Python call per ASGI message, and on a ping
or a 304 the three separate middlewares (and Litestar's PrometheusMiddleware, which builds a Request
and looks up its label children on every call) were a fifth of the CPU (docs/performance.md).

* Request id: ``X-Request-ID`` from the client if sane, else a new one; echoed, bound to every log line.
* Security headers, as a floor under what handlers set themselves:
  ``X-Content-Type-Options: nosniff`` and no referrer everywhere; under ``/media/`` (uploaded files,
  SVG can carry script, served from the console's origin) a sandboxing CSP; on everything else that
  is not HTML (the API) ``frame-ancestors 'none'``. The /ops console and poster pages keep theirs.
* Metrics: ``tourapi_requests_total``, ``tourapi_request_duration_seconds``,
  ``tourapi_requests_in_progress`` and ``tourapi_requests_error_total`` (5xx), labelled by method,
  route template (never a raw path), status and app name; ``/metrics`` itself is not counted.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import structlog
from litestar.middleware._internal.exceptions import ExceptionHandlerMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from tourapi.logs import access_log, access_logger
from tourapi.observability.metrics import APP_NAME, DURATION, ERRORS, IN_PROGRESS, METRICS_PATH, REQUESTS

MEDIA_CSP = b"default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
BASELINE: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{6,64}$")

# Label lookups (``.labels(...)``) hash and validate on every call; routes are few, so keep the children.
_finished: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
_running: dict[tuple[str, str], Any] = {}


def _finished_children(method: str, path: str, status: int) -> tuple[Any, Any, Any]:
    key = (method, path, status)
    children = _finished.get(key)
    if children is None:
        values = (method, path, str(status), APP_NAME)
        errors = ERRORS.labels(*values) if status >= 500 else None
        children = _finished[key] = (REQUESTS.labels(*values), DURATION.labels(*values), errors)
    return children


def _running_child(method: str, path: str) -> Any:
    child = _running.get((method, path))
    if child is None:
        child = _running[(method, path)] = IN_PROGRESS.labels(method, path, APP_NAME)
    return child


def _with_security_headers(headers: list[tuple[bytes, bytes]], media: bool) -> list[tuple[bytes, bytes]]:
    # One pass over the headers: this runs on every response, a 304 included.
    nosniff = referrer = csp = False
    html = False
    for key, value in headers:
        key = key.lower()
        if key == b"content-type":
            html = value.startswith(b"text/html")
        elif key == b"content-security-policy":
            csp = True
        elif key == b"x-content-type-options":
            nosniff = True
        elif key == b"referrer-policy":
            referrer = True
    if not nosniff:
        headers.append(BASELINE[0])
    if not referrer:
        headers.append(BASELINE[1])
    if not csp and (media or not html):
        headers.append((b"content-security-policy", MEDIA_CSP if media else API_CSP))
    return headers


class EdgeMiddleware:
    """Outermost of the app's middlewares (tourapi.observability.plugin puts it before JWT auth), so a
    401 gets its request id, headers, metrics and log line too. Errors raised by the middlewares inside
    it are turned into problem responses here, as Litestar does around each handler: otherwise the
    app-level handler would answer them with the server's own ``send``, past this wrapper."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = ExceptionHandlerMiddleware(app=app, debug=None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value
                break
        request_id = incoming.decode("latin-1")
        if not _REQUEST_ID.match(request_id):
            request_id = secrets.token_hex(8)
        request_id_header = (b"x-request-id", request_id.encode())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        path = scope["path"]
        media = path.startswith("/media/")
        template = scope.get("path_template") or path
        method = scope["method"]
        counted = template != METRICS_PATH
        running = _running_child(method, template) if counted else None
        started = time.perf_counter()
        status = 500
        finished = 0.0

        async def send_at_the_edge(message: Message) -> None:
            nonlocal status, finished
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                headers = _with_security_headers(list(message.get("headers", ())), media)
                headers.append(request_id_header)
                message["headers"] = headers
            elif kind == "http.response.body" and not message.get("more_body"):
                finished = time.perf_counter()
            await send(message)

        if running is not None:
            running.inc()
        try:
            await self.app(scope, receive, send_at_the_edge)
        finally:
            elapsed = (finished or time.perf_counter()) - started
            if running is not None:
                running.dec()
                requests, duration, errors = _finished_children(method, template, status)
                requests.inc()
                duration.observe(elapsed)
                if errors is not None:
                    errors.inc()
            # Cheap level check first: structlog would run its whole processor chain (time stamp,
            # context merge) before the stdlib logger drops the line.
            if access_logger.isEnabledFor(logging.INFO):
                access_log.info(
                    "request", method=method, route=template, status=status, ms=round(elapsed * 1000, 2)
                )
