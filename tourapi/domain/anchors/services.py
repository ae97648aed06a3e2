"""AR anchors: validated writes, nearby/time-filtered queries and the JSON forms.

Output forms (see docs/api.md, section "AR anchors"):
* canonical JSON (``anchor_json``): GeoPose in WGS-84 + ENU, or the quaternion converted to
  ARCore/ARKit with ``frame``;
* ``application/geopose+json`` (``geopose_item``): OGC GeoPose Basic-Quaternion objects, with
  ``id`` and ``altitude_mode`` as extension members.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import msgspec
import shapely
from shapely.geometry import Point
from shapely.ops import nearest_points
from sqlalchemy import Integer, select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.base import utcnow
from tourapi.db.models import Anchor, Poi
from tourapi.db.sync import next_sync_seq
from tourapi.domain.anchors.frames import Frame, Quat, to_frame
from tourapi.domain.anchors.schemas import (
    AnchorCreate,
    AnchorPatch,
    AnchorWrite,
    Asset,
    GeoPose,
    GeospatialMethod,
    ImageMethod,
    Localization,
    VpsMethod,
)
from tourapi.domain.common.params import Paging
from tourapi.domain.media.services import lookup as lookup_media
from tourapi.errors import Conflict, Forbidden, NotFound, Unprocessable
from tourapi.geo.backend import Near, Page, SpatialColumns, SpatialQuery
from tourapi.geo.crs import Crs, to_wgs84
from tourapi.geo.geometry import haversine_m
from tourapi.i18n import FALLBACK, check_texts, pick
from tourapi.runtime import Runtime
from tourapi.security.principal import Principal, Role
from tourapi.timeutil import TZ, InvalidSchedule, parse_schedule

ANCHOR_COLUMNS = SpatialColumns(
    point=Anchor.position,
    shape=Anchor.position,
    lon=Anchor.lon,
    lat=Anchor.lat,
    min_lon=Anchor.lon,
    min_lat=Anchor.lat,
    max_lon=Anchor.lon,
    max_lat=Anchor.lat,
    key=Anchor.id,
)
# |‖q‖ − 1| up to this is rounding drift (float32 clients, 3-4 printed decimals): normalised.
QUATERNION_TOLERANCE = 0.005
H_MIN_M, H_MAX_M = -500.0, 9000.0
MAX_NEARBY_RADIUS_M = 5000.0
# An anchor stands inside its POI's geofence or just outside it (a lantern over the canal in
# front of a street, a rooftop across the lane). Further away usually means GCJ-02 sent as WGS-84.
MAX_FENCE_DISTANCE_M = 150.0
MAX_MARKER_DISTANCE_M = 100.0
USDZ = "model/vnd.usdz+zip"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_POSITION_RANGES = (("lat", -90.0, 90.0, "°"), ("lon", -180.0, 180.0, "°"), ("h", H_MIN_M, H_MAX_M, " m"))


# ---- pose validation -------------------------------------------------------------------------------------


def check_geopose(pose: GeoPose, crs: Crs, field: str) -> tuple[float, float, float, Quat]:
    """(lon, lat, h, unit quaternion) in WGS-84, or a 422 naming e.g. ``geopose.position.h``."""
    position = pose.position
    for name, low, high, unit in _POSITION_RANGES:
        value = getattr(position, name)
        if not math.isfinite(value):
            raise Unprocessable(
                f"{name} must be a finite number, got {value}", field=f"{field}.position.{name}"
            )
        if not low <= value <= high:
            raise Unprocessable(
                f"{name} {value} is outside {low:g}..{high:g}{unit}", field=f"{field}.position.{name}"
            )
    quat = check_quaternion(pose, field)
    lon, lat = position.lon, position.lat
    if crs is not Crs.WGS84:
        lon, lat = to_wgs84(lon, lat, crs)
    return lon, lat, position.h, quat


def check_quaternion(pose: GeoPose, field: str) -> Quat:
    q = pose.quaternion
    components = (q.x, q.y, q.z, q.w)
    for name, value in zip("xyzw", components):
        if not math.isfinite(value):
            raise Unprocessable(
                f"quaternion {name} must be a finite number, got {value}", field=f"{field}.quaternion.{name}"
            )
    norm = math.sqrt(math.fsum(c * c for c in components))
    if not math.isfinite(norm) or abs(norm - 1.0) > QUATERNION_TOLERANCE:
        raise Unprocessable(
            f"quaternion must have unit length (within ±{QUATERNION_TOLERANCE}); its length is {norm:.6g}",
            field=f"{field}.quaternion",
        )
    x, y, z, w = (c / norm for c in components)
    return (x, y, z, w)


def _geopose_dict(lon: float, lat: float, h: float, q: Quat) -> dict[str, Any]:
    return {
        "position": {"lat": lat, "lon": lon, "h": h},
        "quaternion": {"x": q[0], "y": q[1], "z": q[2], "w": q[3]},
    }


# ---- content validation ----------------------------------------------------------------------------------


def check_asset(asset: Asset, field: str, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    uri = asset.uri
    if uri.startswith("https://"):
        parts = urlsplit(uri)
        if not parts.hostname or any(ch.isspace() for ch in uri):
            raise Unprocessable("not a valid https URL", field=f"{field}.uri")
    elif uri.startswith("/media/"):
        digest = uri.removeprefix("/media/")
        if not _SHA256.match(digest):
            raise Unprocessable(
                "a path served by this API must be /media/<sha256> (64 lowercase hex)", field=f"{field}.uri"
            )
        if digest != asset.sha256:
            raise Unprocessable(
                "the /media/ path names another file than the declared sha256", field=f"{field}.uri"
            )
    else:
        raise Unprocessable("asset uri must be https:// or a /media/<sha256> path", field=f"{field}.uri")
    if kinds is not None and not asset.media_type.startswith(kinds):
        raise Unprocessable(
            f"media type must be {' or '.join(k + '*' for k in kinds)}", field=f"{field}.media_type"
        )
    if asset.media_type == USDZ and asset.platform == "android":
        raise Unprocessable(
            "USDZ is an iOS format; platform must be ios or absent", field=f"{field}.platform"
        )
    return msgspec.to_builtins(asset)


def check_localization(
    methods: list[Localization], crs: Crs, anchor_lon: float, anchor_lat: float
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], int] = {}
    for i, method in enumerate(methods):
        field = f"localization[{i}]"
        record = msgspec.to_builtins(method)
        if isinstance(method, VpsMethod):
            key: tuple[str, ...] = ("vps", method.provider, method.map_id)
        elif isinstance(method, ImageMethod):
            key = ("image", method.marker.sha256)
            record["marker"] = check_asset(method.marker, f"{field}.marker", kinds=("image/",))
            if method.marker_geopose is not None:
                lon, lat, h, q = check_geopose(method.marker_geopose, crs, f"{field}.marker_geopose")
                gap = haversine_m(lon, lat, anchor_lon, anchor_lat)
                if gap > MAX_MARKER_DISTANCE_M:
                    raise Unprocessable(
                        f"the marker is {gap:.0f} m from the anchor; at most {MAX_MARKER_DISTANCE_M:.0f} m",
                        field=f"{field}.marker_geopose.position",
                    )
                record["marker_geopose"] = _geopose_dict(lon, lat, h, q)
        else:
            key = (type(method).__name__,)
        if key in seen:
            raise Unprocessable(f"repeats localization[{seen[key]}]", field=field)
        seen[key] = i
        out.append(record)
    geospatial = [i for i, m in enumerate(methods) if isinstance(m, GeospatialMethod)]
    if geospatial and geospatial[0] == len(methods) - 1:
        raise Unprocessable(
            "geospatial needs a fallback after it (image, vps or gps): ARCore's cloud services "
            "do not work in mainland China",
            field="localization",
        )
    return out


def validated(data: AnchorWrite) -> dict[str, Any]:
    """Check every field that needs no database and return the column values (WGS-84)."""
    lon, lat, h, q = check_geopose(data.geopose, data.crs, "geopose")
    try:
        parse_schedule(data.visibility.schedule)
    except InvalidSchedule as exc:
        raise Unprocessable(str(exc), field="visibility.schedule", slug="invalid-opening-hours") from None
    assets = [check_asset(a, f"assets[{i}]") for i, a in enumerate(data.assets)]
    seen: dict[tuple[str, Any, Any], int] = {}
    for i, asset in enumerate(data.assets):
        key = (asset.sha256, asset.platform, asset.lod)
        if key in seen:
            raise Unprocessable(f"repeats assets[{seen[key]}]", field=f"assets[{i}]")
        seen[key] = i
    narration = check_asset(data.narration, "narration", kinds=("audio/",)) if data.narration else None
    return {
        "poi_id": data.poi_id,
        "route_id": data.route_stop.route_id if data.route_stop else None,
        "route_stop_index": data.route_stop.stop_index if data.route_stop else None,
        "position": Point(lon, lat),
        "lon": lon,
        "lat": lat,
        "h": h,
        "qx": q[0],
        "qy": q[1],
        "qz": q[2],
        "qw": q[3],
        "altitude_mode": data.altitude_mode,
        "accuracy": msgspec.to_builtins(data.accuracy) if data.accuracy else None,
        "assets": assets,
        "scale": data.scale,
        "caption": check_texts(data.caption, "caption", max_length=500),
        "narration": narration,
        "schedule": data.visibility.schedule.strip(),
        "radius_m": data.visibility.radius_m,
        "localization": check_localization(data.localization, data.crs, lon, lat),
    }


# ---- output ----------------------------------------------------------------------------------------------


def quaternion_of(anchor: Anchor) -> Quat:
    return (anchor.qx, anchor.qy, anchor.qz, anchor.qw)


def geopose_of(anchor: Anchor, frame: Frame = Frame.ENU) -> dict[str, Any]:
    q = to_frame(quaternion_of(anchor), frame)
    return {
        "position": {"lat": round(anchor.lat, 9), "lon": round(anchor.lon, 9), "h": round(anchor.h, 3)},
        "quaternion": {"x": round(q[0], 9), "y": round(q[1], 9), "z": round(q[2], 9), "w": round(q[3], 9)},
    }


def anchor_json(
    anchor: Anchor,
    chain: tuple[str, ...] = FALLBACK,
    *,
    frame: Frame = Frame.ENU,
    moment: datetime | None = None,
    distance_m: float | None = None,
) -> dict[str, Any]:
    """The canonical form. ``moment`` adds the visibility state then; ``distance_m`` adds distance."""
    caption, lang = pick(anchor.caption, chain)
    visibility: dict[str, Any] = {"schedule": anchor.schedule, "radius_m": anchor.radius_m}
    if moment is not None:
        schedule = parse_schedule(anchor.schedule)
        change = schedule.next_change(moment)
        visibility["visible"] = schedule.is_open(moment)
        visibility["next_change"] = change.astimezone(TZ).isoformat() if change else None
    out: dict[str, Any] = {
        "id": anchor.id,
        "poi_id": anchor.poi_id,
        "route_stop": (
            {"route_id": anchor.route_id, "stop_index": anchor.route_stop_index} if anchor.route_id else None
        ),
        "geopose": geopose_of(anchor, frame),
        "frame": frame.value,
        "altitude_mode": anchor.altitude_mode,
        "accuracy": anchor.accuracy,
        "assets": anchor.assets,
        "scale": anchor.scale,
        "caption": caption,
        "lang": lang,
        "i18n": {"caption": anchor.caption},
        "narration": anchor.narration,
        "visibility": visibility,
        "localization": anchor.localization,
        "updated_at": anchor.updated_at.isoformat(),
        "deleted": False,
    }
    if distance_m is not None:
        out["distance_m"] = round(distance_m, 1)
        out["in_range"] = distance_m <= anchor.radius_m
    return out


def anchor_record(anchor: Anchor) -> dict[str, Any]:
    """The language-neutral record for /v1/sync and route bundles: every caption locale, the
    canonical pose, and nothing clock-dependent (no visibility state)."""
    return {
        "id": anchor.id,
        "poi_id": anchor.poi_id,
        "route_stop": (
            {"route_id": anchor.route_id, "stop_index": anchor.route_stop_index} if anchor.route_id else None
        ),
        "geopose": geopose_of(anchor),
        "altitude_mode": anchor.altitude_mode,
        "accuracy": anchor.accuracy,
        "assets": anchor.assets,
        "scale": anchor.scale,
        "caption": anchor.caption,
        "narration": anchor.narration,
        "visibility": {"schedule": anchor.schedule, "radius_m": anchor.radius_m},
        "localization": anchor.localization,
        "updated_at": anchor.updated_at.isoformat(),
    }


def geopose_item(anchor: Anchor) -> dict[str, Any]:
    """An OGC GeoPose Basic-Quaternion object; ``id`` and ``altitude_mode`` are extension members."""
    return {"id": anchor.id, **geopose_of(anchor), "altitude_mode": anchor.altitude_mode}


# ---- service ---------------------------------------------------------------------------------------------


class AnchorService:
    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session

    # reads

    async def nearby(self, near: Near, moment: datetime, paging: Paging) -> Page:
        """Anchors within ``near`` whose schedule is on at ``moment``, nearest first."""
        # Many anchors share a schedule: evaluate each distinct one once per request.
        open_at = functools.lru_cache(maxsize=None)(lambda schedule: parse_schedule(schedule).is_open(moment))
        stmt = (
            select(Anchor)
            .join(Poi, Poi.id == Anchor.poi_id)
            .where(Anchor.deleted_at.is_(None), Poi.deleted_at.is_(None))
            .order_by(Anchor.id)
        )
        return await self.runtime.spatial.fetch(
            self.session,
            stmt,
            ANCHOR_COLUMNS,
            SpatialQuery(near=near),
            limit=paging.limit,
            offset=paging.offset,
            keep=lambda anchor: open_at(anchor.schedule),
        )

    async def for_poi(self, poi_id: str) -> list[Anchor]:
        poi = await self.session.get(Poi, poi_id)
        if poi is None or poi.deleted_at is not None:
            raise NotFound(f"no POI with id {poi_id!r}", field="poi_id")
        stmt = select(Anchor).where(Anchor.poi_id == poi_id, Anchor.deleted_at.is_(None)).order_by(Anchor.id)
        return list((await self.session.scalars(stmt)).all())

    async def get(self, anchor_id: str, *, include_deleted: bool = False) -> Anchor:
        anchor = await self.session.get(Anchor, anchor_id)
        if anchor is None or (anchor.deleted_at is not None and not include_deleted):
            raise NotFound(f"no anchor with id {anchor_id!r}", field="id")
        return anchor

    # writes

    async def create(self, data: AnchorCreate, principal: Principal | None) -> Anchor:
        if not data.id:
            data = msgspec.structs.replace(data, id=str(uuid4()))
        _check_access(principal, data.poi_id)
        existing = await self.session.get(Anchor, data.id)
        if existing is not None and existing.deleted_at is None:
            raise Conflict(f"an anchor with id {data.id!r} already exists", field="id")
        if existing is not None:
            _check_access(principal, existing.poi_id)
        fields = await self._validated(data)
        anchor = existing or Anchor(id=data.id)
        await self._apply(anchor, fields)
        anchor.deleted_at = None
        if existing is None:
            self.session.add(anchor)
        return await self._commit(anchor)

    async def replace(self, anchor_id: str, data: AnchorWrite, principal: Principal | None) -> Anchor:
        anchor = await self.get(anchor_id)
        _check_access(principal, anchor.poi_id)
        _check_access(principal, data.poi_id)
        await self._apply(anchor, await self._validated(data))
        return await self._commit(anchor)

    async def patch(self, anchor_id: str, data: AnchorPatch, principal: Principal | None) -> Anchor:
        anchor = await self.get(anchor_id)
        _check_access(principal, anchor.poi_id)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        crs = changes.pop("crs", Crs.WGS84)
        if "poi_id" in changes:
            _check_access(principal, changes["poi_id"])
        # Positions sent in another crs are converted here, so the merged record is all WGS-84.
        if "geopose" in changes:
            lon, lat, h, q = check_geopose(changes["geopose"], crs, "geopose")
            changes["geopose"] = _geopose_dict(lon, lat, h, q)
        if "localization" in changes:
            methods = []
            for i, method in enumerate(changes["localization"]):
                record = msgspec.to_builtins(method)
                if isinstance(method, ImageMethod) and method.marker_geopose is not None:
                    field = f"localization[{i}].marker_geopose"
                    record["marker_geopose"] = _geopose_dict(
                        *check_geopose(method.marker_geopose, crs, field)
                    )
                methods.append(record)
            changes["localization"] = methods
        merged = current_as_write(anchor)
        merged.update(msgspec.to_builtins(changes))
        try:
            write = msgspec.convert(merged, AnchorWrite)
        except msgspec.ValidationError as exc:  # pragma: no cover - stored records are valid
            raise Unprocessable(str(exc)) from None
        await self._apply(anchor, await self._validated(write))
        return await self._commit(anchor)

    async def delete(self, anchor_id: str, principal: Principal | None) -> None:
        anchor = await self.get(anchor_id)
        _check_access(principal, anchor.poi_id)
        with self.session.no_autoflush:
            seq = await next_sync_seq(self.session)
        anchor.deleted_at = anchor.updated_at = utcnow()
        anchor.sync_seq = seq
        await self.session.commit()
        await self.runtime.catalog_changed()

    async def upsert(self, anchor_id: str, data: AnchorWrite) -> bool:
        """Insert or update without conflict errors (fixtures); returns whether anything changed."""
        fields = await self._validated(data)
        anchor = await self.session.get(Anchor, anchor_id)
        if anchor is not None and anchor.deleted_at is None and _same(anchor, fields):
            return False
        is_new = anchor is None
        anchor = anchor or Anchor(id=anchor_id)
        await self._apply(anchor, fields)
        anchor.deleted_at = None
        if is_new:
            self.session.add(anchor)
        await self._commit(anchor)
        return True

    # helpers

    async def _validated(self, data: AnchorWrite) -> dict[str, Any]:
        fields = validated(data)
        poi = await self.session.get(Poi, data.poi_id)
        if poi is None or poi.deleted_at is not None:
            raise Unprocessable(f"no POI with id {data.poi_id!r}", field="poi_id")
        point = fields["position"]
        if not poi.geofence.covers(point):
            nearest = nearest_points(poi.geofence, point)[0]
            gap = haversine_m(point.x, point.y, nearest.x, nearest.y)
            if gap > MAX_FENCE_DISTANCE_M:
                raise Unprocessable(
                    f"the anchor is {gap:.0f} m outside the geofence of {poi.id!r}; at most "
                    f"{MAX_FENCE_DISTANCE_M:.0f} m (coordinates in GCJ-02 or BD-09 need crs=gcj02/bd09)",
                    field="geopose.position",
                )
        await self._check_media(data)
        if data.route_stop is not None:
            await self._check_route_stop(data.route_stop.route_id, data.route_stop.stop_index, data.poi_id)
        return fields

    async def _check_media(self, data: AnchorWrite) -> None:
        """A /media/<sha256> path is served by us only if the media store holds that file."""
        refs = [(f"assets[{i}]", a) for i, a in enumerate(data.assets)]
        if data.narration is not None:
            refs.append(("narration", data.narration))
        refs += [
            (f"localization[{i}].marker", m.marker)
            for i, m in enumerate(data.localization)
            if isinstance(m, ImageMethod)
        ]
        refs = [(field, asset) for field, asset in refs if asset.uri.startswith("/media/")]
        stored = await lookup_media(self.session, [asset.sha256 for _, asset in refs])
        for field, asset in refs:
            row = stored.get(asset.sha256)
            if row is None:
                raise Unprocessable(
                    f"the media store has no file {asset.sha256}; upload it first (POST /v1/media)",
                    field=f"{field}.uri",
                )
            if row.bytes != asset.bytes:
                raise Unprocessable(f"the stored file has {row.bytes} bytes", field=f"{field}.bytes")
            if row.content_type != asset.media_type:
                raise Unprocessable(f"the stored file is {row.content_type}", field=f"{field}.media_type")

    async def _check_route_stop(self, route_id: str, stop_index: int, poi_id: str) -> None:
        """Validated only when the routes feature's models are importable (plain columns, no FK)."""
        route_model, stop_model = _route_models()
        if route_model is None:
            return
        route = await self.session.get(route_model, route_id)
        if route is None or getattr(route, "deleted_at", None) is not None:
            raise Unprocessable(f"no route with id {route_id!r}", field="route_stop.route_id")
        if stop_model is None:
            return
        order_column = _stop_order_column(stop_model)
        if order_column is None or not hasattr(stop_model, "route_id"):
            return
        stop = (
            await self.session.scalars(
                select(stop_model).where(stop_model.route_id == route_id, order_column == stop_index)
            )
        ).first()
        if stop is None:
            raise Unprocessable(f"route {route_id!r} has no stop {stop_index}", field="route_stop.stop_index")
        stop_poi = getattr(stop, "poi_id", None)
        if stop_poi is not None and stop_poi != poi_id:
            raise Unprocessable(
                f"stop {stop_index} of route {route_id!r} is at {stop_poi!r}, not at {poi_id!r}",
                field="route_stop.stop_index",
            )

    async def _apply(self, anchor: Anchor, fields: dict[str, Any]) -> None:
        with self.session.no_autoflush:
            seq = await next_sync_seq(self.session)
        for key, value in fields.items():
            setattr(anchor, key, value)
        anchor.updated_at = utcnow()
        anchor.sync_seq = seq

    async def _commit(self, anchor: Anchor) -> Anchor:
        await self.session.commit()
        await self.runtime.catalog_changed()
        return anchor


def _check_access(principal: Principal | None, poi_id: str) -> None:
    """Admins and operators edit any anchor; staff only the anchors of their own venues."""
    if principal is None or principal.role in (Role.ADMIN, Role.OPERATOR):
        return
    if not principal.can_act_on_venue(poi_id):
        raise Forbidden(f"this account may not edit anchors of venue {poi_id!r}")


def _route_models() -> tuple[Any, Any]:
    try:
        models = importlib.import_module("tourapi.db.models")
    except ImportError:  # pragma: no cover
        return None, None
    return getattr(models, "Route", None), getattr(models, "RouteStop", None)


def _stop_order_column(stop_model: Any) -> Any:
    for name in ("stop_index", "position", "seq", "ordinal", "index"):
        column = getattr(stop_model, name, None)
        if column is not None and isinstance(getattr(column, "type", None), Integer):
            return column
    return None


def current_as_write(anchor: Anchor) -> dict[str, Any]:
    return {
        "poi_id": anchor.poi_id,
        "geopose": _geopose_dict(anchor.lon, anchor.lat, anchor.h, quaternion_of(anchor)),
        "altitude_mode": anchor.altitude_mode,
        "assets": anchor.assets,
        "caption": anchor.caption,
        "visibility": {"schedule": anchor.schedule, "radius_m": anchor.radius_m},
        "localization": anchor.localization,
        "accuracy": anchor.accuracy,
        "scale": anchor.scale,
        "narration": anchor.narration,
        "route_stop": (
            {"route_id": anchor.route_id, "stop_index": anchor.route_stop_index} if anchor.route_id else None
        ),
    }


def _same(anchor: Anchor, fields: dict[str, Any]) -> bool:
    for key, value in fields.items():
        current = getattr(anchor, key)
        if key == "position":
            if current is None or not shapely.equals_exact(current, value, tolerance=1e-12):
                return False
        elif current != value:
            return False
    return True
