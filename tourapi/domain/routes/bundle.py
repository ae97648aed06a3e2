"""Offline bundle manifests: everything an app needs to follow one route without a network.

The manifest is canonical JSON (sorted keys, no spaces, UTF-8) of the bundle's
content: the route, its schedule rules (with the public holidays an app needs to
evaluate ``PH``), the POIs with their geofences, the sections added by bundle
contributors (``anchors``) and the list of files to download. ``version`` is the
SHA-256 of that content, so identical content always has the same version and
ETag, across restarts and workers, and any change to anything in it gives a new
one. Nothing clock-dependent is in it except the holiday years (this year and
next, in Asia/Shanghai), which change at New Year only.

Built manifests (plain and gzip-compressed) are cached per worker by (route,
catalogue sequence, year): when the catalogue has not changed, a 200 or a 304
needs no database round trip and no compression.

Other features add a section with one line::

    register_bundle_contributor("anchors", lambda session, scope: anchors_for_pois(session, scope.poi_ids),
                                anchor_asset_refs)
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Poi, Route
from tourapi.domain.routes.schedule import BOAT_KMH, DETOUR_FACTOR, PACE_KMH, SHUTTLE_KMH
from tourapi.domain.routes.services import PUBLISHED
from tourapi.domain.routes.views import route_content
from tourapi.domain.sync.sources import poi_record
from tourapi.errors import NotFound
from tourapi.runtime import Runtime
from tourapi.timeutil import NIGHT_STARTS, TZ, is_public_holiday
from tourapi.web.etag import matches

FORMAT = 1
DEFAULT_SECTIONS = ("anchors",)
CACHE_ROUTES = 512
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class BundleScope:
    """What a contributor gets: the route id, its stops' POI ids (sorted) and the route record."""

    route_id: str
    poi_ids: tuple[str, ...]
    route: dict[str, Any]


Records = Callable[[AsyncSession, BundleScope], Awaitable[list[dict[str, Any]]]]
Files = Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]
_CONTRIBUTORS: dict[str, tuple[Records, Files | None]] = {}


def register_bundle_contributor(section: str, records: Records, files: Files | None = None) -> None:
    """Fill manifest ``section`` with ``await records(session, scope)``; ``files(records)`` lists their files.

    File entries need ``sha256`` and ``bytes`` plus a url (``url`` or ``uri``) and a media type
    (``content_type``, ``media_type`` or ``type``); they are normalised and de-duplicated by sha256.
    """
    if section in ("format", "version", "route", "schedule_rules", "pois", "files"):
        raise ValueError(f"{section!r} is a reserved manifest key")
    _CONTRIBUTORS[section] = (records, files)


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def file_entry(ref: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    entry = {
        "url": ref.get("url") or ref.get("uri"),
        "sha256": ref["sha256"],
        "bytes": ref["bytes"],
        "content_type": ref.get("content_type") or ref.get("media_type") or ref.get("type"),
    }
    if role or ref.get("role"):
        entry["role"] = role or ref.get("role")
    return entry


def holidays_for(year: int) -> list[str]:
    """China's public holidays (PH) of ``year`` and the next, as ISO dates."""
    day, end = date(year, 1, 1), date(year + 2, 1, 1)
    out = []
    while day < end:
        if is_public_holiday(day):
            out.append(day.isoformat())
        day += timedelta(days=1)
    return out


async def build_content(session: AsyncSession, route: Route, year: int) -> dict[str, Any]:
    poi_ids = tuple(sorted({s.poi_id for s in route.stops}))
    pois = {p.id: p for p in (await session.scalars(select(Poi).where(Poi.id.in_(poi_ids)))).all()}
    record = route_content(route, pois)
    files: dict[str, dict[str, Any]] = {}

    def add(entry: dict[str, Any]) -> None:
        files.setdefault(entry["sha256"], entry)

    if route.cover:
        add(file_entry(route.cover, "cover"))
    for poi_id in poi_ids:
        for media in pois[poi_id].media:
            add(file_entry(media))
    content: dict[str, Any] = {
        "format": FORMAT,
        "route": record,
        "schedule_rules": {
            "schedule": route.schedule,
            "timezone": str(TZ),
            "night_starts": NIGHT_STARTS.strftime("%H:%M"),
            "event_times": "HH:MM local; before 12:00 is the next calendar day of the night",
            "public_holidays": holidays_for(year),
            "paces_kmh": PACE_KMH,
            "detour_factor": DETOUR_FACTOR,
            "boat_kmh": BOAT_KMH,
            "shuttle_kmh": SHUTTLE_KMH,
        },
        "pois": [poi_record(pois[i]) for i in poi_ids],
    }
    for section in DEFAULT_SECTIONS:
        content[section] = []
    scope = BundleScope(route.id, poi_ids, record)
    for section, (records, list_files) in sorted(_CONTRIBUTORS.items()):
        items = await records(session, scope)
        content[section] = items
        for ref in list_files(items) if list_files else []:
            add(file_entry(ref))
    content["files"] = sorted(files.values(), key=lambda f: (f["url"] or "", f["sha256"]))
    return content


RawHeaders = tuple[tuple[bytes, bytes], ...]
Reply = tuple[int, RawHeaders, bytes]
# Apps revalidate bundles before each use; a 304 is cheap and answered from memory.
BUNDLE_CACHE_CONTROL = b"public, no-cache"


@dataclass(frozen=True, slots=True)
class Built:
    seq: int
    year: int
    version: str
    body: bytes
    # The three possible answers to a GET, ready for ASGI (status, headers, body), made once per build;
    # the body is gzip-compressed here once (the compression middleware skips bundles).
    not_modified: Reply
    as_gzip: Reply
    as_plain: Reply

    @classmethod
    def of(cls, seq: int, year: int, version: str, body: bytes) -> Built:
        gzipped = gzip.compress(body, compresslevel=6, mtime=0)
        common = (
            (b"etag", f'"{version}"'.encode()),
            (b"vary", b"Accept-Encoding"),
            (b"cache-control", BUNDLE_CACHE_CONTROL),
        )
        json = (b"content-type", b"application/json")
        return cls(
            seq,
            year,
            version,
            body,
            (304, common, b""),
            (
                200,
                (*common, json, (b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(gzipped))),
                gzipped,
            ),
            (200, (*common, json, (b"content-length", b"%d" % len(body))), body),
        )

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class _Cache:
    def __init__(self) -> None:
        self.items: OrderedDict[str, Built] = OrderedDict()
        self.lock = asyncio.Lock()

    def get(self, route_id: str, seq: int, year: int) -> Built | None:
        built = self.items.get(route_id)
        if built is None or built.seq != seq or built.year != year or seq < 0:
            return None
        self.items.move_to_end(route_id)
        return built

    def put(self, route_id: str, built: Built) -> None:
        if built.seq < 0:
            return
        self.items[route_id] = built
        self.items.move_to_end(route_id)
        while len(self.items) > CACHE_ROUTES:
            self.items.popitem(last=False)


_caches: weakref.WeakKeyDictionary[Runtime, _Cache] = weakref.WeakKeyDictionary()


def _cache(runtime: Runtime) -> _Cache:
    cache = _caches.get(runtime)
    if cache is None:
        cache = _caches[runtime] = _Cache()
    return cache


def cached(runtime: Runtime, route_id: str) -> Built | None:
    """The manifest for the current catalogue, if this worker has built it (no I/O)."""
    return _cache(runtime).get(route_id, runtime.catalog_seq, datetime.now(TZ).year)


async def manifest(runtime: Runtime, route_id: str) -> Built:
    if not _SLUG.match(route_id):
        raise NotFound(f"no route with id {route_id!r}", field="id")
    cache = _cache(runtime)
    seq, year = runtime.catalog_seq, datetime.now(TZ).year
    hit = cache.get(route_id, seq, year)
    if hit is not None:
        return hit
    async with cache.lock:  # one build at a time per worker; the waiters then find it cached
        hit = cache.get(route_id, seq, year)
        if hit is not None:
            return hit
        async with runtime.sessionmaker() as session:
            route = await session.get(Route, route_id)
            if route is None or route.deleted_at is not None or route.status != PUBLISHED:
                raise NotFound(f"no published route with id {route_id!r}", field="id")
            content = await build_content(session, route, year)
        version = hashlib.sha256(canonical_json(content)).hexdigest()
        body = canonical_json({"version": version, **content})
        built = Built.of(seq, year, version, body)
        cache.put(route_id, built)
        return built


def reply(built: Built, if_none_match: str | None, accept_encoding: str | None) -> Reply:
    """Status, headers and body for a GET of this manifest: 304 if the client has it, gzip if it accepts it."""
    if matches(if_none_match, built.etag):
        return built.not_modified
    return built.as_gzip if accepts_gzip(accept_encoding) else built.as_plain


class CachedBundleMiddleware:
    """Answers a bundle GET that this worker has already built (200 or 304) from memory at the ASGI level.

    Apps revalidate their bundles before every use, so this is the route's hot path: it skips Litestar's
    argument parsing and ``Response`` building (most of a 304's cost, docs/performance.md). Bundles are
    public (no guard runs), so nothing is skipped that applies here; a cold or stale cache, or an
    unknown route, goes on to the handler, which builds the manifest and answers through ``reply`` too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        built = cached(scope["app"].state.runtime, scope["path_params"]["route_id"])
        if built is None:
            await self.app(scope, receive, send)
            return
        if_none_match = accept_encoding = None
        for key, value in scope["headers"]:
            if key == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif key == b"accept-encoding":
                accept_encoding = value.decode("latin-1")
        status, headers, body = reply(built, if_none_match, accept_encoding)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it)."""
    for part in (accept_encoding or "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False
