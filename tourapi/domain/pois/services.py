"""POIs: queries, GeoJSON output and validated writes."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points
from sqlalchemy import Select, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.base import utcnow
from tourapi.db.models import Anchor, Poi
from tourapi.db.sync import next_sync_seq
from tourapi.domain.common.params import Paging
from tourapi.domain.pois.schemas import GeoJsonGeometry, Media, PoiCreate, PoiPatch, PoiWrite
from tourapi.errors import Conflict, NotFound, Unprocessable
from tourapi.geo.backend import Near, SpatialColumns, SpatialQuery
from tourapi.geo.crs import Crs, geometry_from_wgs84, geometry_to_wgs84
from tourapi.geo.geometry import (
    GeometryError,
    degrees_for_metres,
    haversine_m,
    haversine_many,
    local_metric,
    parse_geojson,
    to_geojson,
)
from tourapi.i18n import check_texts, pick
from tourapi.runtime import Runtime
from tourapi.timeutil import TZ, parse_schedule

POI_COLUMNS = SpatialColumns(
    point=Poi.location,
    shape=Poi.location,
    lon=Poi.lon,
    lat=Poi.lat,
    min_lon=Poi.lon,
    min_lat=Poi.lat,
    max_lon=Poi.lon,
    max_lat=Poi.lat,
    key=Poi.id,
)
GEOFENCE_COLUMNS = SpatialColumns(
    point=Poi.location,
    shape=Poi.geofence,
    lon=Poi.lon,
    lat=Poi.lat,
    min_lon=Poi.fence_min_lon,
    min_lat=Poi.fence_min_lat,
    max_lon=Poi.fence_max_lon,
    max_lat=Poi.fence_max_lat,
    key=Poi.id,
)
MAX_FENCE_AREA_M2 = (
    5_000_000.0  # 5 km²: bigger than any single venue; catches swapped or degree-sized polygons
)
MAX_FENCE_DISTANCE_M = 1000.0


@dataclass(frozen=True, slots=True)
class PoiQuery:
    bbox: tuple[float, float, float, float] | None = None
    near: Near | None = None
    category: str | None = None
    open_at: datetime | None = None
    updated_since: datetime | None = None


def geometry_out(geom: BaseGeometry, crs: Crs) -> dict[str, Any]:
    return to_geojson(geom if crs is Crs.WGS84 else geometry_from_wgs84(geom, crs))


# expression -> (computed at, valid until, {"open_now", "next_change"}). The state holds from the moment
# it was computed until its next change, so later moments of the same local day reuse it.
_OPENING: dict[str, tuple[datetime, datetime, dict[str, Any]]] = {}
_FEATURE_PARTS: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
CACHE_LIMIT = 50_000
_POI_KEYS = tuple(attr.key for attr in sa_inspect(Poi).column_attrs)


def opening_state(poi: Poi, moment: datetime) -> dict[str, Any]:
    if not poi.opening_hours:
        return {"open_now": None, "next_change": None}
    cached = _OPENING.get(poi.opening_hours)
    if cached is not None and cached[0] <= moment < cached[1]:
        return cached[2]
    schedule = parse_schedule(poi.opening_hours)
    change = schedule.next_change(moment)
    state = {
        "open_now": schedule.state(moment),
        "next_change": change.astimezone(TZ).isoformat() if change else None,
    }
    if change is not None:
        # Same local day only: schedules with public holidays are evaluated in windows that start
        # at the moment's date, so another date may see a different window.
        local = moment.astimezone(TZ)
        day_end = datetime.combine(local.date() + timedelta(days=1), time(0), TZ)
        if len(_OPENING) >= CACHE_LIMIT:
            _OPENING.clear()
        _OPENING[poi.opening_hours] = (moment, min(change, day_end), state)
    return state


def tombstone(poi: Poi) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": poi.id,
        "geometry": None,
        "properties": {
            "deleted": True,
            "deleted_at": poi.deleted_at.isoformat() if poi.deleted_at else None,
            "updated_at": poi.updated_at.isoformat(),
        },
    }


def poi_feature(
    poi: Poi,
    chain: tuple[str, ...],
    crs: Crs,
    moment: datetime,
    *,
    distance_m: float | None = None,
    with_geofence: bool = True,
) -> dict[str, Any]:
    if poi.deleted_at is not None:
        return tombstone(poi)
    head, tail, geometry = _feature_parts(poi, chain, crs, with_geofence)
    props: dict[str, Any] = {**head, **opening_state(poi, moment), **tail}
    if distance_m is not None:
        props["distance_m"] = round(distance_m, 1)
    return {"type": "Feature", "id": poi.id, "geometry": geometry, "properties": props}


def _feature_parts(
    poi: Poi, chain: tuple[str, ...], crs: Crs, with_geofence: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The parts of a feature that only change with the row: cached per row version (sync_seq and
    updated_at change on every write), language chain and crs. Geometry serialisation and the
    language pick are most of a feature's cost."""
    key = (poi.id, poi.sync_seq, poi.updated_at, chain, crs, with_geofence)
    parts = _FEATURE_PARTS.get(key)
    if parts is not None:
        return parts
    name, lang = pick(poi.name, chain)
    description, _ = pick(poi.description, chain)
    head = {
        "category": poi.category,
        "name": name,
        "description": description,
        "lang": lang,
        "i18n": {"name": poi.name, "description": poi.description},
        "opening_hours": poi.opening_hours,
    }
    tail: dict[str, Any] = {
        "capacity": poi.capacity,
        "dwell_threshold_s": poi.dwell_threshold_s,
        "interest": poi.interest,
        "visit_minutes": poi.visit_minutes,
        "tags": poi.tags,
        "media": poi.media,
        "updated_at": poi.updated_at.isoformat(),
        "deleted": False,
    }
    if with_geofence:
        tail["geofence"] = geometry_out(poi.geofence, crs)
    parts = (head, tail, geometry_out(poi.location, crs))
    if len(_FEATURE_PARTS) >= CACHE_LIMIT:
        _FEATURE_PARTS.clear()
    _FEATURE_PARTS[key] = parts
    return parts


class LiveCatalog:
    """Every live POI in memory, current for the catalogue change sequence this worker last saw
    (``Runtime.catalog_seq``: after a local write at once, after another worker's within a poll
    interval, like the geofence index). Nearby lists are answered from it with the same sphere,
    radius test and order (distance, then id) as PostGIS's ST_DWithin/ST_Distance on geography, so
    the hot read costs no database round trip, no WKB or JSON parsing and no ORM state.

    Rows are read-only copies of every column. After the first full load only rows whose sync_seq
    moved are read again (the sequence is taken under a row lock, so every number up to a committed
    version is committed).
    """

    def __init__(self) -> None:
        self.version = -1
        self.rows: dict[str, SimpleNamespace] = {}
        self._lock = asyncio.Lock()
        self._ordered: list[SimpleNamespace] = []
        self._lons = np.zeros(0)
        self._lats = np.zeros(0)

    async def current(self, session: AsyncSession, version: int) -> LiveCatalog:
        if self.version == version:
            return self
        async with self._lock:
            if self.version == version:
                return self
            stmt = select(Poi) if self.version < 0 else select(Poi).where(Poi.sync_seq > self.version)
            for poi in (await session.scalars(stmt)).all():
                if poi.deleted_at is None:
                    self.rows[poi.id] = SimpleNamespace(**{key: getattr(poi, key) for key in _POI_KEYS})
                else:
                    self.rows.pop(poi.id, None)
            self._ordered = [self.rows[poi_id] for poi_id in sorted(self.rows)]
            self._lons = np.array([row.lon for row in self._ordered], dtype=float)
            self._lats = np.array([row.lat for row in self._ordered], dtype=float)
            self.version = version
        return self

    def nearby(
        self, near: Near, category: str | None, limit: int, offset: int
    ) -> tuple[list[Any], list[float | None], bool]:
        dlon, dlat = degrees_for_metres(near.radius_m, near.lat)
        boxed = np.flatnonzero(
            (np.abs(self._lats - near.lat) <= dlat) & (np.abs(self._lons - near.lon) <= dlon)
        )
        metres = haversine_many(self._lons[boxed], self._lats[boxed], near.lon, near.lat)
        found = sorted(
            (float(d), self._ordered[i].id, i)
            for i, d in zip(boxed.tolist(), metres.tolist())
            if d <= near.radius_m and (category is None or self._ordered[i].category == category)
        )
        window = found[offset : offset + limit]
        return (
            [self._ordered[i] for _, _, i in window],
            [d for d, _, _ in window],
            len(found) > offset + limit,
        )


_CATALOGS: weakref.WeakKeyDictionary[Runtime, LiveCatalog] = weakref.WeakKeyDictionary()


def catalog_of(runtime: Runtime) -> LiveCatalog:
    catalog = _CATALOGS.get(runtime)
    if catalog is None:
        catalog = _CATALOGS[runtime] = LiveCatalog()
    return catalog


class PoiService:
    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session

    # ---- reads -------------------------------------------------------------------------------------------

    def _select(self, query: PoiQuery) -> Select[Any]:
        stmt = select(Poi).order_by(Poi.id)
        if query.updated_since is not None:
            stmt = stmt.where(Poi.updated_at > query.updated_since)
        else:
            stmt = stmt.where(Poi.deleted_at.is_(None))
        if query.category is not None:
            stmt = stmt.where(Poi.category == query.category)
        return stmt

    async def search(
        self, query: PoiQuery, paging: Paging, columns: SpatialColumns = POI_COLUMNS
    ) -> tuple[list[Poi], list[float | None], bool]:
        keep = None
        if query.open_at is not None:
            moment = query.open_at
            keep = lambda poi: (  # noqa: E731 - a predicate handed to the spatial backend
                poi.deleted_at is not None
                or (bool(poi.opening_hours) and parse_schedule(poi.opening_hours).is_open(moment))
            )
        if (
            keep is None
            and query.near is not None
            and query.bbox is None
            and query.updated_since is None
            and columns is POI_COLUMNS
            and self.runtime.catalog_seq >= 0
        ):
            catalog = await catalog_of(self.runtime).current(self.session, self.runtime.catalog_seq)
            return catalog.nearby(query.near, query.category, paging.limit, paging.offset)
        page = await self.runtime.spatial.fetch(
            self.session,
            self._select(query),
            columns,
            SpatialQuery(query.bbox, query.near),
            limit=paging.limit,
            offset=paging.offset,
            keep=keep,
        )
        return page.rows, page.distances, page.has_more

    async def get(self, poi_id: str, *, include_deleted: bool = False) -> Poi:
        poi = await self.session.get(Poi, poi_id)
        if poi is None or (poi.deleted_at is not None and not include_deleted):
            raise NotFound(f"no POI with id {poi_id!r}", field="id")
        return poi

    # ---- writes ------------------------------------------------------------------------------------------

    async def create(self, data: PoiCreate) -> Poi:
        if not data.id:
            raise Unprocessable("id is required", field="id")
        existing = await self.session.get(Poi, data.id)
        if existing is not None and existing.deleted_at is None:
            raise Conflict(f"a POI with id {data.id!r} already exists", field="id")
        poi = existing or Poi(id=data.id)
        await self._apply(poi, _validated(data))
        poi.deleted_at = None
        if existing is None:
            self.session.add(poi)
        return await self._commit(poi)

    async def replace(self, poi_id: str, data: PoiWrite) -> Poi:
        poi = await self.get(poi_id)
        await self._apply(poi, _validated(data))
        return await self._commit(poi)

    async def patch(self, poi_id: str, data: PoiPatch) -> Poi:
        poi = await self.get(poi_id)
        merged = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        crs = merged.pop("crs", Crs.WGS84)
        current = _current_as_write(poi)
        if crs is not Crs.WGS84 and ("location" in merged) != ("geofence" in merged):
            # The stored half is WGS-84 and cannot be read in the request's crs.
            given, missing = ("location", "geofence") if "location" in merged else ("geofence", "location")
            raise Unprocessable(f"send {missing} too when patching {given} in a non-WGS84 crs", field=missing)
        if "location" not in merged and "geofence" not in merged:
            crs = Crs.WGS84  # no coordinates in this patch: the stored WGS-84 ones stay as they are
        elif crs is not Crs.WGS84:
            current.update({"location": merged.get("location"), "geofence": merged.get("geofence")})
        current.update(merged)
        current["crs"] = crs
        await self._apply(poi, _validated(msgspec.convert(current, PoiWrite, from_attributes=True)))
        return await self._commit(poi)

    async def delete(self, poi_id: str) -> None:
        """Soft-delete the POI and the AR anchors placed in it, so clients sync both tombstones."""
        poi = await self.get(poi_id)
        now = utcnow()
        poi.sync_seq = await next_sync_seq(self.session)
        poi.deleted_at = poi.updated_at = now
        anchors = (
            await self.session.scalars(
                select(Anchor).where(Anchor.poi_id == poi_id, Anchor.deleted_at.is_(None)).order_by(Anchor.id)
            )
        ).all()
        for anchor in anchors:
            anchor.sync_seq = await next_sync_seq(
                self.session
            )  # one number each: sync pages never split a seq
            anchor.deleted_at = anchor.updated_at = now
        await self.session.commit()
        await self.runtime.catalog_changed()

    async def upsert(self, poi_id: str, data: PoiWrite) -> bool:
        """Insert or update without conflict errors (fixtures); returns whether anything changed."""
        fields = _validated(data)
        poi = await self.session.get(Poi, poi_id)
        if poi is not None and poi.deleted_at is None and _same(poi, fields):
            return False
        is_new = poi is None
        poi = poi or Poi(id=poi_id)
        await self._apply(poi, fields)
        poi.deleted_at = None
        if is_new:
            self.session.add(poi)
        await self._commit(poi)
        return True

    async def _apply(self, poi: Poi, fields: dict[str, Any]) -> None:
        with self.session.no_autoflush:
            seq = await next_sync_seq(self.session)
        for key, value in fields.items():
            setattr(poi, key, value)
        poi.updated_at = utcnow()
        poi.sync_seq = seq

    async def _commit(self, poi: Poi) -> Poi:
        await self.session.commit()
        await self.runtime.catalog_changed()
        return poi


def _validated(data: PoiWrite) -> dict[str, Any]:
    """Check every field of a write and return the column values (WGS-84 geometries)."""
    location = _geometry(data.location, "location", ("Point",), data.crs)
    geofence = _geometry(data.geofence, "geofence", ("Polygon", "MultiPolygon"), data.crs)
    metric, _, _ = local_metric(np.array([geofence], dtype=object))
    area = float(shapely.area(metric[0]))
    if area > MAX_FENCE_AREA_M2:
        raise Unprocessable(
            f"geofence covers {area / 1e6:.1f} km²; at most {MAX_FENCE_AREA_M2 / 1e6:.0f} km²",
            field="geofence",
        )
    nearest = nearest_points(geofence, location)[0] if not geofence.covers(location) else location
    gap = haversine_m(location.x, location.y, nearest.x, nearest.y)
    if gap > MAX_FENCE_DISTANCE_M:
        raise Unprocessable(
            f"location is {gap:.0f} m from its geofence; at most {MAX_FENCE_DISTANCE_M:.0f} m",
            field="location",
        )
    if data.opening_hours is not None:
        try:
            parse_schedule(data.opening_hours)
        except ValueError as exc:
            raise Unprocessable(str(exc), field="opening_hours", slug="invalid-opening-hours") from None
    for i, media in enumerate(data.media):
        check_media(media, f"media[{i}]")
    minx, miny, maxx, maxy = geofence.bounds
    return {
        "category": data.category,
        "name": check_texts(data.name, "name"),
        "description": check_texts(data.description, "description", required=False),
        "location": location,
        "geofence": geofence,
        "lon": location.x,
        "lat": location.y,
        "fence_min_lon": minx,
        "fence_min_lat": miny,
        "fence_max_lon": maxx,
        "fence_max_lat": maxy,
        "opening_hours": data.opening_hours.strip() if data.opening_hours else None,
        "capacity": data.capacity,
        "dwell_threshold_s": data.dwell_threshold_s,
        "interest": data.interest,
        "visit_minutes": data.visit_minutes,
        "tags": sorted(set(data.tags)),
        "media": [msgspec.to_builtins(m) for m in data.media],
    }


def check_media(media: Media, field: str) -> None:
    if not (media.url.startswith("https://") or media.url.startswith("/media/")):
        raise Unprocessable(
            "media url must be https:// or a /media/ path served by this API", field=f"{field}.url"
        )


def _geometry(value: GeoJsonGeometry, field: str, allowed: tuple[str, ...], crs: Crs) -> BaseGeometry:
    raw = {"type": value.type, "coordinates": value.coordinates}
    try:
        geom = parse_geojson(raw, field, allowed)
        if crs is not Crs.WGS84:
            geom = geometry_to_wgs84(geom, crs)
        return geom
    except GeometryError:
        raise
    except (ValueError, TypeError) as exc:
        raise GeometryError(field, str(exc)) from None


def _current_as_write(poi: Poi) -> dict[str, Any]:
    return {
        "category": poi.category,
        "name": poi.name,
        "description": poi.description,
        "location": to_geojson(poi.location, precision=12),
        "geofence": to_geojson(poi.geofence, precision=12),
        "capacity": poi.capacity,
        "opening_hours": poi.opening_hours,
        "dwell_threshold_s": poi.dwell_threshold_s,
        "interest": poi.interest,
        "visit_minutes": poi.visit_minutes,
        "tags": poi.tags,
        "media": poi.media,
    }


def _same(poi: Poi, fields: dict[str, Any]) -> bool:
    for key, value in fields.items():
        current = getattr(poi, key)
        if isinstance(value, BaseGeometry):
            if not shapely.equals_exact(current, value, tolerance=1e-9):
                return False
        elif current != value:
            return False
    return True


def now() -> datetime:
    return datetime.now(UTC)
