"""Conversions between WGS-84 and the Chinese map datums GCJ-02 and BD-09.

AMap (Gaode) and Tencent return and expect GCJ-02 ("Mars coordinates"). Baidu
uses BD-09, which is applied on top of GCJ-02. We store WGS-84 and convert only
at the API edge.

* WGS-84 -> GCJ-02 is the published "Krasovsky 1940" algorithm
  (a = 6378245.0, ee = 0.00669342162296594323, with the usual
  ``transform_lat`` / ``transform_lon`` polynomials).
* GCJ-02 -> BD-09 is Baidu's published rotation/scaling
  (x_pi = pi * 3000 / 180, then +0.0065 / +0.006).
* The inverses have no closed form. The widely copied one-step inverse is off
  by 1-2 m, so the inverses here use fixed-point iteration until the step is
  below ``_TOL_DEG`` (1e-9 degrees, about 0.1 mm) or ``_MAX_ITER`` rounds have
  run. In practice 3-5 rounds are enough.

Outside China
-------------
Points outside China are returned unchanged in both directions. "Outside China"
uses the same rough test as the published implementations (eviltransform,
coordtransform-rs, and others): a **rectangle** with longitude 72.004 to 137.8347 and
latitude 0.8293 to 55.8271, bounds inclusive. It is *not* China's border.
It covers parts of neighbouring countries (Mongolia, Korea, most of Japan's
west, South-East Asia, and others), and points there are shifted too, as every
map SDK that uses this algorithm does. Some libraries (for example
wandergis/coordtransform) use a tighter box (73.66-135.05, 3.86-53.55), so
they disagree with this one in the band between the two boxes.

The test is applied to the *input* coordinate in whichever CRS it is given,
as the reference implementations do. So in the last ~0.01 degrees inside the
rectangle's edges (all far from China's territory), a round trip can cross
the edge and fail to return to the start. Inside China proper, round trips
are exact to well under a millimetre.

Vertices of a geometry are tested one by one. A geometry that straddles the
rectangle's edge is converted only partly.

Argument order is always ``(lon, lat)``, that is (x, y).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from math import atan2, cos, isfinite, sin, sqrt
from typing import Any

import numpy as np

__all__ = [
    "CHINA_BBOX",
    "Crs",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "from_wgs84_many",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "geometry_from_wgs84",
    "geometry_to_wgs84",
    "is_out_of_china",
    "to_wgs84",
    "to_wgs84_many",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

LonLat = tuple[float, float]


class Crs(str, Enum):
    """Coordinate reference systems accepted at the API edge."""

    WGS84 = "wgs84"  # GPS, OSM, our storage
    GCJ02 = "gcj02"  # AMap / Gaode, Tencent, Google China tiles
    BD09 = "bd09"  # Baidu (lon/lat flavour, not BD09MC metres)

    def __str__(self) -> str:  # "gcj02", not "Crs.GCJ02"
        return self.value


# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------
_PI = math.pi
_A = 6378245.0  # Krasovsky 1940 semi-major axis
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_X_PI = _PI * 3000.0 / 180.0
_DEG = _PI / 180.0
_LAT_SCALE = 180.0 / (_A * (1.0 - _EE) * _PI)  # metres-ish -> degrees (lat)
_LON_SCALE = 180.0 / (_A * _PI)  # metres-ish -> degrees (lon)
_TWO_THIRDS = 2.0 / 3.0

#: (lon_min, lat_min, lon_max, lat_max) of the out-of-China rectangle (inclusive).
CHINA_BBOX = (72.004, 0.8293, 137.8347, 55.8271)
_LON_MIN, _LAT_MIN, _LON_MAX, _LAT_MAX = CHINA_BBOX

_TOL_DEG = 1e-9  # stop iterating when the step is below this (about 0.1 mm)
_MAX_ITER = 30  # hard bound; converges in 3-5 rounds inside the box

# Up to this many points, the per-point Python path is faster than numpy. Each
# numpy call has a fixed overhead of about 50 us for the forward transform and
# about 200 us for the iterated inverse, whatever N is. The Python path costs
# about 1.5 us per point forward and 5-7 us per point inverse. Measured
# crossovers are about 25-40 points.
_SMALL_N = 32


# --------------------------------------------------------------------------
# Scalar kernels (no validation, no bbox test)
# --------------------------------------------------------------------------
def _gcj_offset(lon: float, lat: float) -> LonLat:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS-84 point (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    xpi = x * _PI
    ypi = y * _PI
    xy = x * y
    sx = sqrt(abs(x))
    common = 20.0 * sin(6.0 * xpi) + 20.0 * sin(2.0 * xpi)
    t_lat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * xy
        + 0.2 * sx
        + (
            common
            + 20.0 * sin(ypi)
            + 40.0 * sin(ypi / 3.0)
            + 160.0 * sin(ypi / 12.0)
            + 320.0 * sin(ypi / 30.0)
        )
        * _TWO_THIRDS
    )
    t_lon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * xy
        + 0.1 * sx
        + (
            common
            + 20.0 * sin(xpi)
            + 40.0 * sin(xpi / 3.0)
            + 150.0 * sin(xpi / 12.0)
            + 300.0 * sin(xpi / 30.0)
        )
        * _TWO_THIRDS
    )
    rad = lat * _DEG
    s = sin(rad)
    magic = 1.0 - _EE * s * s
    sqrt_magic = sqrt(magic)
    dlat = t_lat * _LAT_SCALE * magic * sqrt_magic
    dlon = t_lon * _LON_SCALE * sqrt_magic / cos(rad)
    return dlon, dlat


def _k_wgs_to_gcj(lon: float, lat: float) -> LonLat:
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _k_gcj_to_wgs(glon: float, glat: float) -> LonLat:
    # Solve w + offset(w) = g by fixed point w <- g - offset(w). The offset's
    # Jacobian is ~1e-3, so each round gains ~3 digits. The first round is the
    # classic one-step inverse.
    wlon, wlat = glon, glat
    for _ in range(_MAX_ITER):
        dlon, dlat = _gcj_offset(wlon, wlat)
        nlon = glon - dlon
        nlat = glat - dlat
        if abs(nlon - wlon) < _TOL_DEG and abs(nlat - wlat) < _TOL_DEG:
            return nlon, nlat
        wlon, wlat = nlon, nlat
    return wlon, wlat


def _k_gcj_to_bd(lon: float, lat: float) -> LonLat:
    z = sqrt(lon * lon + lat * lat) + 0.00002 * sin(lat * _X_PI)
    theta = atan2(lat, lon) + 0.000003 * cos(lon * _X_PI)
    return z * cos(theta) + 0.0065, z * sin(theta) + 0.006


def _k_bd_to_gcj(blon: float, blat: float) -> LonLat:
    # Start from Baidu's published approximate inverse (a few cm off), then
    # refine g <- g - (F(g) - b). The contraction factor is about 0.02.
    x = blon - 0.0065
    y = blat - 0.006
    z = sqrt(x * x + y * y) - 0.00002 * sin(y * _X_PI)
    theta = atan2(y, x) - 0.000003 * cos(x * _X_PI)
    glon = z * cos(theta)
    glat = z * sin(theta)
    for _ in range(_MAX_ITER):
        flon, flat = _k_gcj_to_bd(glon, glat)
        slon = flon - blon
        slat = flat - blat
        glon -= slon
        glat -= slat
        if abs(slon) < _TOL_DEG and abs(slat) < _TOL_DEG:
            break
    return glon, glat


def _k_wgs_to_bd(lon: float, lat: float) -> LonLat:
    return _k_gcj_to_bd(*_k_wgs_to_gcj(lon, lat))


def _k_bd_to_wgs(lon: float, lat: float) -> LonLat:
    return _k_gcj_to_wgs(*_k_bd_to_gcj(lon, lat))


def _k_identity(lon: float, lat: float) -> LonLat:
    return lon, lat


# --------------------------------------------------------------------------
# Vectorised kernels (float64 1-D arrays, all inside the box, no validation)
# --------------------------------------------------------------------------
def _v_gcj_offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    xpi = x * _PI
    ypi = y * _PI
    xy = x * y
    sx = np.sqrt(np.abs(x))
    common = 20.0 * np.sin(6.0 * xpi) + 20.0 * np.sin(2.0 * xpi)
    t_lat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * xy
        + 0.2 * sx
        + (
            common
            + 20.0 * np.sin(ypi)
            + 40.0 * np.sin(ypi / 3.0)
            + 160.0 * np.sin(ypi / 12.0)
            + 320.0 * np.sin(ypi / 30.0)
        )
        * _TWO_THIRDS
    )
    t_lon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * xy
        + 0.1 * sx
        + (
            common
            + 20.0 * np.sin(xpi)
            + 40.0 * np.sin(xpi / 3.0)
            + 150.0 * np.sin(xpi / 12.0)
            + 300.0 * np.sin(xpi / 30.0)
        )
        * _TWO_THIRDS
    )
    rad = lat * _DEG
    s = np.sin(rad)
    magic = 1.0 - _EE * s * s
    sqrt_magic = np.sqrt(magic)
    dlat = t_lat * _LAT_SCALE * magic * sqrt_magic
    dlon = t_lon * _LON_SCALE * sqrt_magic / np.cos(rad)
    return dlon, dlat


def _v_wgs_to_gcj(lon, lat):
    dlon, dlat = _v_gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _v_gcj_to_wgs(glon, glat):
    wlon, wlat = glon, glat
    for _ in range(_MAX_ITER):
        dlon, dlat = _v_gcj_offset(wlon, wlat)
        nlon = glon - dlon
        nlat = glat - dlat
        done = np.abs(nlon - wlon).max() < _TOL_DEG and np.abs(nlat - wlat).max() < _TOL_DEG
        wlon, wlat = nlon, nlat
        if done:
            break
    return wlon, wlat


def _v_gcj_to_bd(lon, lat):
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _v_bd_to_gcj(blon, blat):
    x = blon - 0.0065
    y = blat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    glon = z * np.cos(theta)
    glat = z * np.sin(theta)
    for _ in range(_MAX_ITER):
        flon, flat = _v_gcj_to_bd(glon, glat)
        slon = flon - blon
        slat = flat - blat
        glon = glon - slon
        glat = glat - slat
        if np.abs(slon).max() < _TOL_DEG and np.abs(slat).max() < _TOL_DEG:
            break
    return glon, glat


def _v_wgs_to_bd(lon, lat):
    return _v_gcj_to_bd(*_v_wgs_to_gcj(lon, lat))


def _v_bd_to_wgs(lon, lat):
    return _v_gcj_to_wgs(*_v_bd_to_gcj(lon, lat))


# --------------------------------------------------------------------------
# CRS dispatch
# --------------------------------------------------------------------------
_ScalarK = Callable[[float, float], LonLat]

# Keys include both the members and their plain string values. A str-mixin
# Enum member hashes by *name*, so "gcj02" would not find the key Crs.GCJ02.
_SCALAR_TO_WGS: dict = {}
_SCALAR_FROM_WGS: dict = {}
_VECTOR_TO_WGS: dict = {}
_VECTOR_FROM_WGS: dict = {}
for _crs, _to_s, _from_s, _to_v, _from_v in (
    (Crs.WGS84, _k_identity, _k_identity, None, None),
    (Crs.GCJ02, _k_gcj_to_wgs, _k_wgs_to_gcj, _v_gcj_to_wgs, _v_wgs_to_gcj),
    (Crs.BD09, _k_bd_to_wgs, _k_wgs_to_bd, _v_bd_to_wgs, _v_wgs_to_bd),
):
    for _key in (_crs, _crs.value):
        _SCALAR_TO_WGS[_key] = _to_s
        _SCALAR_FROM_WGS[_key] = _from_s
        _VECTOR_TO_WGS[_key] = _to_v
        _VECTOR_FROM_WGS[_key] = _from_v
del _crs, _to_s, _from_s, _to_v, _from_v, _key


def _coerce_crs(crs: Any) -> Crs:
    if isinstance(crs, Crs):
        return crs
    if isinstance(crs, str):
        try:
            return Crs(crs.strip().lower())
        except ValueError:
            pass
    raise ValueError(f"unknown CRS {crs!r}; expected one of {', '.join(c.value for c in Crs)}")


def _lookup(table: dict, crs: Any):
    try:
        return table[crs]
    except (KeyError, TypeError):
        return table[_coerce_crs(crs)]


# --------------------------------------------------------------------------
# Public scalar API
# --------------------------------------------------------------------------
def _checked(lon: Any, lat: Any) -> LonLat:
    # math.isfinite raises TypeError for str/None, which is what we want.
    if not (isfinite(lon) and isfinite(lat)):
        raise ValueError(f"coordinates must be finite, got lon={lon!r}, lat={lat!r}")
    return float(lon), float(lat)


def is_out_of_china(lon: float, lat: float) -> bool:
    """True if (lon, lat) is outside the rough China **rectangle** (see module doc).

    This is the bounding-box test that the published implementations use.
    It is not a border test.
    """
    lon, lat = _checked(lon, lat)
    return not (_LON_MIN <= lon <= _LON_MAX and _LAT_MIN <= lat <= _LAT_MAX)


def _apply(kernel: _ScalarK, lon: Any, lat: Any) -> LonLat:
    if not (isfinite(lon) and isfinite(lat)):
        raise ValueError(f"coordinates must be finite, got lon={lon!r}, lat={lat!r}")
    lon = float(lon)
    lat = float(lat)
    if _LON_MIN <= lon <= _LON_MAX and _LAT_MIN <= lat <= _LAT_MAX:
        return kernel(lon, lat)
    return lon, lat


def to_wgs84(lon: float, lat: float, crs: Crs | str) -> LonLat:
    """Convert one point given in ``crs`` to WGS-84. Returns ``(lon, lat)``.

    Points outside the China rectangle are returned unchanged. Inverses are
    iterated to convergence, so the error is < 1 mm.
    Raises ValueError for NaN/inf or an unknown ``crs``.
    """
    return _apply(_lookup(_SCALAR_TO_WGS, crs), lon, lat)


def from_wgs84(lon: float, lat: float, crs: Crs | str) -> LonLat:
    """Convert one WGS-84 point to ``crs``. Returns ``(lon, lat)``.

    Points outside the China rectangle are returned unchanged.
    Raises ValueError for NaN/inf or an unknown ``crs``.
    """
    return _apply(_lookup(_SCALAR_FROM_WGS, crs), lon, lat)


def wgs84_to_gcj02(lon: float, lat: float) -> LonLat:
    """WGS-84 -> GCJ-02 (forward Krasovsky algorithm)."""
    return _apply(_k_wgs_to_gcj, lon, lat)


def gcj02_to_wgs84(lon: float, lat: float) -> LonLat:
    """GCJ-02 -> WGS-84 (iterated exact inverse, < 1 mm)."""
    return _apply(_k_gcj_to_wgs, lon, lat)


def gcj02_to_bd09(lon: float, lat: float) -> LonLat:
    """GCJ-02 -> BD-09 (Baidu's forward formula)."""
    return _apply(_k_gcj_to_bd, lon, lat)


def bd09_to_gcj02(lon: float, lat: float) -> LonLat:
    """BD-09 -> GCJ-02 (iterated exact inverse)."""
    return _apply(_k_bd_to_gcj, lon, lat)


def wgs84_to_bd09(lon: float, lat: float) -> LonLat:
    """WGS-84 -> BD-09 (via GCJ-02)."""
    return _apply(_k_wgs_to_bd, lon, lat)


def bd09_to_wgs84(lon: float, lat: float) -> LonLat:
    """BD-09 -> WGS-84 (via GCJ-02, both steps iterated exactly)."""
    return _apply(_k_bd_to_wgs, lon, lat)


# --------------------------------------------------------------------------
# Public vectorised API
# --------------------------------------------------------------------------
def _as_coord_array(coords: Any) -> np.ndarray:
    arr = np.asarray(coords)
    if arr.dtype.kind not in "iuf":
        if arr.size == 0 and arr.dtype.kind in "bOUS":
            arr = arr.astype(np.float64)  # np.asarray([]) etc.: an empty batch
        else:
            raise TypeError(f"coordinates must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 2)  # [] -> no points
    if arr.ndim < 1 or arr.shape[-1] not in (2, 3):
        raise ValueError(f"coordinates must have shape (..., 2) or (..., 3), got {arr.shape}")
    # Always a fresh float64 array: the caller's input is never modified.
    return np.array(arr, dtype=np.float64, copy=True)


def _convert_array(arr: np.ndarray, scalar_k: _ScalarK, vector_k) -> np.ndarray:
    """Convert columns 0/1 of a float64 (..., 2|3) array in place and return it.

    A third column (z) is left alone.
    """
    flat = arr.reshape(-1, arr.shape[-1])  # a view: arr is contiguous
    x = flat[:, 0]
    y = flat[:, 1]
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("coordinates must be finite (found NaN or inf)")
    if vector_k is None or flat.shape[0] == 0:
        return arr
    if flat.shape[0] <= _SMALL_N:
        xs = x.tolist()
        ys = y.tolist()
        for i, (lon, lat) in enumerate(zip(xs, ys)):
            if _LON_MIN <= lon <= _LON_MAX and _LAT_MIN <= lat <= _LAT_MAX:
                xs[i], ys[i] = scalar_k(lon, lat)
        x[:] = xs
        y[:] = ys
        return arr
    inside = (x >= _LON_MIN) & (x <= _LON_MAX) & (y >= _LAT_MIN) & (y <= _LAT_MAX)
    if inside.all():
        nx, ny = vector_k(x, y)
        x[:] = nx
        y[:] = ny
    elif inside.any():
        nx, ny = vector_k(x[inside], y[inside])
        x[inside] = nx
        y[inside] = ny
    return arr


def to_wgs84_many(coords: Any, crs: Crs | str) -> np.ndarray:
    """Convert many points given in ``crs`` to WGS-84.

    ``coords`` is anything numpy can turn into an array of shape ``(..., 2)``
    (lon, lat) or ``(..., 3)`` (lon, lat, z, where z is passed through
    unchanged), such as a list of ``(lon, lat)`` pairs or an ``(N, 2)`` array.
    Returns a new float64 array of the same shape. The input is never
    modified. Points outside the China rectangle are unchanged.
    Raises ValueError if any lon/lat is NaN/inf.
    """
    fn = _lookup(_SCALAR_TO_WGS, crs)
    vk = _lookup(_VECTOR_TO_WGS, crs)
    return _convert_array(_as_coord_array(coords), fn, vk)


def from_wgs84_many(coords: Any, crs: Crs | str) -> np.ndarray:
    """Convert many WGS-84 points to ``crs``. Same contract as :func:`to_wgs84_many`."""
    fn = _lookup(_SCALAR_FROM_WGS, crs)
    vk = _lookup(_VECTOR_FROM_WGS, crs)
    return _convert_array(_as_coord_array(coords), fn, vk)


def _transform_geometry(geom, scalar_k, vector_k):
    import shapely  # local import: keep the scalar path free of the shapely import

    def fn(xy: np.ndarray) -> np.ndarray:
        return _convert_array(np.array(xy, dtype=np.float64, copy=True), scalar_k, vector_k)

    # include_z=None keeps 3D geometries 3D (z is passed through unchanged).
    return shapely.transform(geom, fn, include_z=None)


def geometry_to_wgs84(geom, crs: Crs | str):
    """Convert a Shapely geometry (or array of geometries) from ``crs`` to WGS-84.

    Converts every vertex, keeps Z, and returns a new geometry.
    Raises ValueError on NaN/inf x/y.
    """
    return _transform_geometry(geom, _lookup(_SCALAR_TO_WGS, crs), _lookup(_VECTOR_TO_WGS, crs))


def geometry_from_wgs84(geom, crs: Crs | str):
    """Convert a Shapely geometry (or array of geometries) from WGS-84 to ``crs``."""
    return _transform_geometry(geom, _lookup(_SCALAR_FROM_WGS, crs), _lookup(_VECTOR_FROM_WGS, crs))
