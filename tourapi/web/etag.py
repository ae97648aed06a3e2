"""ETag / If-None-Match for JSON GET responses.

Buffers 200 JSON bodies of GET/HEAD requests, tags them with a weak ETag from a
BLAKE2b hash, and answers 304 when the client already has that version.
Handlers that know their version cheaply (bundles, media) set ETag themselves and
answer 304 before doing any work; they declare ``own_etag=True`` (a route opt) and this middleware
steps aside for them at once. Any other response that already has an ETag is passed through too.
"""

from __future__ import annotations

import hashlib
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

_TAGGED_TYPES = (b"application/json", b"application/geo+json", b"application/geopose+json")


def etag_for(body: bytes) -> str:
    return 'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match == etag:  # what a client that stored our ETag sends back
        return True
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


def _untagged_json(headers: Any) -> bool:
    content_type = b""
    for key, value in headers:
        key = key.lower()
        if key == b"etag":
            return False
        if key == b"content-type":
            content_type = value
    return content_type.startswith(_TAGGED_TYPES)


class ETagMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or (handler is not None and handler.opt.get("own_etag"))
        ):
            await self.app(scope, receive, send)
            return
        if_none_match = None
        for key, value in scope["headers"]:
            if key == b"if-none-match":
                if_none_match = value.decode("latin-1")
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def buffered_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] == 200 and _untagged_json(message.get("headers", ())):
                    start = dict(message)
                    return
                await send(message)
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            etag = etag_for(body)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"etag", etag.encode()))
            if matches(if_none_match, etag):
                keep = (b"etag", b"cache-control", b"vary", b"content-location", b"expires", b"date")
                headers = [(k, v) for k, v in headers if k.lower() in keep]
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered_send)
