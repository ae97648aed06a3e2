"""The operators' console: static files from the package, their security headers, and its config.

The console is plain HTML, CSS and JavaScript modules under tourapi/static/ops (no build step, no
CDN). Everything it loads comes from this server, so the Content-Security-Policy allows 'self'
only, plus the origin of the optional basemap tile server (settings.tile_url).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import urlsplit

from tourapi import __version__
from tourapi.errors import NotFound
from tourapi.settings import Settings

log = logging.getLogger("tourapi.ops")

ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg|png|woff2)$")
CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "woff2": "font/woff2",
    "html": "text/html; charset=utf-8",
}
TILE_PLACEHOLDERS = ("{z}", "{x}", "{y}")


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def _root() -> Traversable:
    return resources.files("tourapi") / "static" / "ops"


_loaded: dict[str, tuple[object, StaticFile]] = {}


def _load(path: Traversable, kind: str) -> StaticFile:
    """The file, read once; read again only if it changed on disk (an editable install being worked on)."""
    stat = path.stat() if isinstance(path, Path) else None
    version = (stat.st_mtime_ns, stat.st_size) if stat else None
    cached = _loaded.get(str(path))
    if cached is not None and cached[0] == version:
        return cached[1]
    body = path.read_bytes()
    file = StaticFile(
        body, CONTENT_TYPES[kind], '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    )
    _loaded[str(path)] = (version, file)
    return file


def page() -> StaticFile:
    return _load(_root() / "index.html", "html")


def asset(name: str) -> StaticFile:
    """A file from static/ops/assets by bare name (no directories, so no path traversal)."""
    match = ASSET_NAME.match(name)
    path = _root() / "assets" / name
    if match is None or not path.is_file():
        raise NotFound(f"no console asset {name!r}", field="name")
    return _load(path, match.group(1))


def tile_url(settings: Settings) -> str | None:
    """settings.tile_url if it is a usable http(s) XYZ template, else None (logged once per value)."""
    url = settings.tile_url
    if not url:
        return None
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or not all(p in url for p in TILE_PLACEHOLDERS)
    ):
        _warn_bad_tile_url(url)
        return None
    return url


@cache
def _warn_bad_tile_url(url: str) -> None:
    log.warning("TOURAPI_TILE_URL ignored: needs an http(s) URL with {z}, {x} and {y} (got %r)", url)


def tile_origin(url: str) -> str:
    """The CSP source for the tile server: its origin, with a {s} subdomain as a wildcard."""
    parts = urlsplit(url)
    host = parts.netloc
    if "{s}" in host:
        host = "*." + host.split("{s}", 1)[1].lstrip(".")
    return f"{parts.scheme}://{host}"


def security_headers(settings: Settings) -> dict[str, str]:
    tiles = tile_url(settings)
    img = "'self' data:" + (f" {tile_origin(tiles)}" if tiles else "")
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {img}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",  # the login form is handled by script; never submitted as a page
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), fullscreen=(self)",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }


def console_config(settings: Settings) -> dict[str, object]:
    """What the page needs to know about this server (public: no secrets)."""
    return {
        "version": __version__,
        "tile_url": tile_url(settings),
        "aggregate_interval_s": settings.aggregate_interval_s,
        "snapshot_interval_s": settings.snapshot_interval_s,
        "timezone": "Asia/Shanghai",
    }
