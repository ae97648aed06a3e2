"""Query-parameter dependencies shared by the catalogue endpoints (validated once, named errors)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from litestar.params import HeaderParameter, PathParameter, QueryParameter

from tourapi.errors import Unprocessable
from tourapi.geo.backend import Near
from tourapi.geo.crs import Crs, to_wgs84
from tourapi.geo.geometry import GeometryError, check_lon_lat
from tourapi.i18n import check_lang_param, preference
from tourapi.timeutil import TZ

RowId = Annotated[int, PathParameter(ge=1, le=2_147_483_647, description="numeric id")]
CrsParam = Annotated[Crs, QueryParameter(description="coordinate system of coordinates in and out")]
MAX_RADIUS_M = 50_000.0
MAX_BBOX_DEGREES = 2.0  # per side: a city, not a country
MAX_PAGE = 500


def provide_bbox(
    bbox: Annotated[
        str | None,
        QueryParameter(description="minLon,minLat,maxLon,maxLat (in the request crs)", examples=[]),
    ] = None,
    crs: CrsParam = Crs.WGS84,
) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    parts = bbox.split(",")
    if len(parts) != 4:
        raise Unprocessable(
            "bbox needs four comma-separated numbers: minLon,minLat,maxLon,maxLat", field="bbox"
        )
    try:
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError:
        raise Unprocessable("bbox values must be numbers", field="bbox") from None
    try:
        check_lon_lat(min_lon, min_lat, "bbox")
        check_lon_lat(max_lon, max_lat, "bbox")
    except GeometryError as exc:
        raise Unprocessable(exc.message, field="bbox") from None
    if min_lon > max_lon or min_lat > max_lat:
        raise Unprocessable(
            "bbox minimums must not exceed maximums (minLon,minLat,maxLon,maxLat)", field="bbox"
        )
    if max_lon - min_lon > MAX_BBOX_DEGREES or max_lat - min_lat > MAX_BBOX_DEGREES:
        raise Unprocessable(f"bbox may span at most {MAX_BBOX_DEGREES} degrees per side", field="bbox")
    if crs is not Crs.WGS84:
        min_lon, min_lat = to_wgs84(min_lon, min_lat, crs)
        max_lon, max_lat = to_wgs84(max_lon, max_lat, crs)
    return (min_lon, min_lat, max_lon, max_lat)


def point_in(lon: float, lat: float, crs: Crs, field: str = "lon") -> tuple[float, float]:
    """Validate a client coordinate and convert it to WGS-84."""
    try:
        check_lon_lat(lon, lat, field)
    except GeometryError as exc:
        raise Unprocessable(exc.message, field=exc.field) from None
    return to_wgs84(lon, lat, crs) if crs is not Crs.WGS84 else (lon, lat)


def provide_near(
    lon: Annotated[float | None, QueryParameter(description="longitude of the reference point")] = None,
    lat: Annotated[float | None, QueryParameter(description="latitude of the reference point")] = None,
    radius: Annotated[float | None, QueryParameter(description=f"metres, at most {MAX_RADIUS_M:.0f}")] = None,
    crs: CrsParam = Crs.WGS84,
) -> Near | None:
    given = [v is not None for v in (lon, lat, radius)]
    if not any(given):
        return None
    if not all(given):
        missing = next(n for n, v in (("lon", lon), ("lat", lat), ("radius", radius)) if v is None)
        raise Unprocessable("lon, lat and radius go together", field=missing)
    assert lon is not None and lat is not None and radius is not None
    if not math.isfinite(radius) or radius <= 0 or radius > MAX_RADIUS_M:
        raise Unprocessable(f"radius must be a number of metres in (0, {MAX_RADIUS_M:.0f}]", field="radius")
    wlon, wlat = point_in(lon, lat, crs)
    return Near(wlon, wlat, radius)


def provide_lang_chain(
    lang: Annotated[str | None, QueryParameter(description="preferred locale, e.g. en or zh-Hans")] = None,
    accept_language: Annotated[str | None, HeaderParameter(name="Accept-Language", required=False)] = None,
) -> tuple[str, ...]:
    return preference(check_lang_param(lang), accept_language)


def parse_moment(value: str, field: str) -> datetime:
    """ISO 8601 date-time; without an offset it is Asia/Shanghai local time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(
            "must be an ISO 8601 date-time, e.g. 2026-10-01T20:00+08:00", field=field
        ) from None
    return moment.replace(tzinfo=TZ) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int
    offset: int


def provide_paging(
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="page size")] = 100,
    offset: Annotated[int, QueryParameter(ge=0, le=1_000_000, description="items to skip")] = 0,
) -> Paging:
    return Paging(limit, offset)
