"""Security headers on every response, as a floor under what handlers set themselves.

* ``X-Content-Type-Options: nosniff`` everywhere: a JSON or media body is never sniffed into HTML.
* Under ``/media/``: uploaded files (SVG can carry script) are served from our own origin, where the
  operators' console keeps its token; a sandboxing CSP keeps a file opened directly from running script.
* Everything else that is not HTML (the API) gets ``frame-ancestors 'none'`` and no referrer.
Handlers that set a header (the /ops console, poster landing pages) keep theirs.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

MEDIA_CSP = b"default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
BASELINE: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        media = scope.get("path", "").startswith("/media/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [(k, v) for k, v in BASELINE if k not in present]
                if b"content-security-policy" not in present:
                    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                    if media:
                        extra.append((b"content-security-policy", MEDIA_CSP))
                    elif not content_type.startswith(b"text/html"):
                        extra.append((b"content-security-policy", API_CSP))
                if extra:
                    message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
