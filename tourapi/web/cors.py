"""A compressed answer keeps ``Vary: Accept-Encoding`` when CORS is on.

Litestar's CORS middleware sets ``Vary: Origin`` over any ``Vary`` already there, so a gzip answer
would tell shared caches (a CDN in front of bundles) that it varies by origin only, and a cache could
hand gzip to a client that cannot read it. This ``before_send`` hook runs after the CORS middleware
(Litestar wraps the server's ``send`` with the hooks, then CORS wraps that) and puts it back.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope


async def keep_vary_accept_encoding(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    if "content-encoding" not in headers:
        return
    varies = {part.strip().lower() for part in (headers.get("vary") or "").split(",")}
    if "accept-encoding" not in varies and "*" not in varies:
        headers.extend_header_value("vary", "Accept-Encoding")
