"""Geometry validation and metric helpers (WGS-84 lon/lat in, metres where stated).

Distances use a sphere of the mean Earth radius, the same model PostGIS uses
for ``geography`` with ``use_spheroid=false``, so both storage backends
compute identical distances (within floating-point noise).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6371008.7714  # PostGIS's sphere radius for geography with use_spheroid=false
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
MAX_VERTICES = 2000


class GeometryError(ValueError):
    """An invalid geometry or coordinate; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_lon_lat(lon: float, lat: float, field: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeometryError(field, "coordinates must be finite numbers (no NaN or Infinity)")
    if not -90.0 <= lat <= 90.0:
        hint = " (coordinates are [lon, lat]; were they swapped?)" if -90.0 <= lon <= 90.0 else ""
        raise GeometryError(field, f"latitude {lat} is outside -90..90{hint}")
    if not -180.0 <= lon <= 180.0:
        raise GeometryError(field, f"longitude {lon} is outside -180..180")


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def haversine_many(lon: np.ndarray, lat: np.ndarray, lon0: float, lat0: float) -> np.ndarray:
    p1, p2 = np.radians(lat), math.radians(lat0)
    dp, dl = p2 - p1, np.radians(lon0 - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * math.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))


def degrees_for_metres(metres: float, lat: float) -> tuple[float, float]:
    """Half-widths (dlon, dlat) of a box that contains a circle of ``metres`` around a point at ``lat``."""
    dlat = metres / M_PER_DEG
    cos_lat = max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    return min(dlat / cos_lat, 180.0), dlat


def parse_geojson(value: Any, field: str, allowed: tuple[str, ...]) -> BaseGeometry:
    """A GeoJSON geometry object -> a valid Shapely geometry, or GeometryError naming the problem."""
    if not isinstance(value, dict) or "type" not in value or "coordinates" not in value:
        raise GeometryError(field, "must be a GeoJSON geometry object with 'type' and 'coordinates'")
    kind = value["type"]
    if kind not in allowed:
        raise GeometryError(field, f"geometry type must be {' or '.join(allowed)}, got {kind!r}")
    try:
        geom = shapely.geometry.shape(value)
    except Exception as exc:  # noqa: BLE001 - shapely raises several types for malformed coordinates
        raise GeometryError(field, f"malformed {kind} coordinates: {exc}") from None
    return check_geometry(geom, field)


def check_geometry(geom: BaseGeometry, field: str) -> BaseGeometry:
    if geom.is_empty:
        raise GeometryError(field, "geometry is empty")
    coords = shapely.get_coordinates(geom)
    if len(coords) > MAX_VERTICES:
        raise GeometryError(field, f"geometry has {len(coords)} vertices; the limit is {MAX_VERTICES}")
    if not np.isfinite(coords).all():
        raise GeometryError(field, "coordinates must be finite numbers (no NaN or Infinity)")
    lons, lats = coords[:, 0], coords[:, 1]
    if (np.abs(lats) > 90).any():
        bad = float(lats[np.abs(lats) > 90][0])
        raise GeometryError(
            field, f"latitude {bad} is outside -90..90 (coordinates are [lon, lat]; were they swapped?)"
        )
    if (np.abs(lons) > 180).any():
        raise GeometryError(field, f"longitude {float(lons[np.abs(lons) > 180][0])} is outside -180..180")
    if not geom.is_valid:
        raise GeometryError(field, f"invalid geometry: {shapely.is_valid_reason(geom)}")
    if geom.geom_type in ("Polygon", "MultiPolygon") and geom.area == 0:
        raise GeometryError(field, "polygon has zero area")
    return geom


def to_geojson(geom: BaseGeometry, precision: int = 7) -> dict[str, Any]:
    """RFC 7946 geometry dict; 7 decimals is ~1 cm, well below GPS noise."""
    mapping = shapely.geometry.mapping(geom)
    return {"type": mapping["type"], "coordinates": _round(mapping["coordinates"], precision)}


def _round(value: Any, precision: int) -> Any:
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], float | int):
            return [round(float(v), precision) for v in value]
        return [_round(v, precision) for v in value]
    return value


def local_metric(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project each geometry to metres around the centre of its own bounds (equirectangular).

    Returns (projected geometries, origin lon per geometry, origin lat per geometry).
    Good to well under 0.1% for objects a few kilometres across.
    """
    bounds = shapely.bounds(geoms)
    lon0 = (bounds[:, 0] + bounds[:, 2]) / 2
    lat0 = (bounds[:, 1] + bounds[:, 3]) / 2
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    scale_x = np.cos(np.radians(lat0))[index] * M_PER_DEG
    projected = np.column_stack(
        ((coords[:, 0] - lon0[index]) * scale_x, (coords[:, 1] - lat0[index]) * M_PER_DEG)
    )
    # transform() hands over the coordinates in get_coordinates() order, so the precomputed array lines up.
    return shapely.transform(geoms, lambda _: projected), lon0, lat0


def from_local_metric(geoms: np.ndarray, lon0: np.ndarray, lat0: np.ndarray) -> np.ndarray:
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    scale_x = np.cos(np.radians(lat0))[index] * M_PER_DEG
    unprojected = np.column_stack(
        (coords[:, 0] / scale_x + lon0[index], coords[:, 1] / M_PER_DEG + lat0[index])
    )
    return shapely.transform(geoms, lambda _: unprojected)
