"""Tests for tourapi.geo.crs (WGS-84 / GCJ-02 / BD-09 conversions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, Polygon

from tourapi.geo import crs as crs_mod
from tourapi.geo.crs import (
    CHINA_BBOX,
    Crs,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    from_wgs84_many,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geometry_from_wgs84,
    geometry_to_wgs84,
    is_out_of_china,
    to_wgs84,
    to_wgs84_many,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

EARTH_R = 6371008.8  # mean Earth radius, metres
INVERSE_TOL_M = 0.5  # required accuracy of the inverses
FORWARD_TOL_DEG = 1e-6  # required agreement with the published forward vectors


def haversine_m(lon1, lat1, lon2, lat2):
    """Great-circle distance in metres. Works on scalars or numpy arrays."""
    p1 = np.radians(lat1)
    p2 = np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_R * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


# ---------------------------------------------------------------------------
# Reference vectors from independent implementations.
#
# googollee/eviltransform, python/test.py (same values in go/transform_test.go
# and php/tests/EvilTransformTest.php). The upstream tuples are
# (wgsLat, wgsLng, gcjLat, gcjLng). Here they are re-ordered to (lon, lat).
# Upstream asserts forward to 6 decimals and gcj2wgs_exact to < 0.5 m.
EVILTRANSFORM_WGS_GCJ = [
    # name,        wgs (lon, lat),             gcj (lon, lat)
    ("shanghai", (121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ("shenzhen", (113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ("beijing", (116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
]
# We do NOT use eviltransform's TESTS_bd vectors (python/test.py). They were
# made by the old python/eviltransform.py (commit 40db2ed), which used
# sin(y * pi) / cos(x * pi) in bd2gcj where Baidu's formula has
# x_pi = pi * 3000 / 180. They are 10-40 m away from the standard BD-09
# transform. Baidu vectors come from wandergis and coordtransform-rs below.

# wandergis/coordtransform, test/app.js (the same values are in README.md and are
# asserted in wyxloading/coordtransform-rs tests/tests.rs). All at (116.404, 39.915), (lon, lat).
WANDERGIS_INPUT = (116.404, 39.915)
WANDERGIS_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
WANDERGIS_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
# These two are the usual *approximate* one-step inverses, not exact:
WANDERGIS_BD09_TO_GCJ02 = (116.39762729119315, 39.90865673957631)
WANDERGIS_GCJ02_TO_WGS84 = (116.39775550083061, 39.91359571849836)
# wyxloading/coordtransform-rs, tests/tests.rs: wgs84_to_bd09(116.404, 39.915)
COORDTRANSFORM_RS_WGS84_TO_BD09 = (116.41662724378733, 39.922699552216216)


def _assert_close_deg(got, want, tol=FORWARD_TOL_DEG):
    assert abs(got[0] - want[0]) < tol, (got, want)
    assert abs(got[1] - want[1]) < tol, (got, want)


@pytest.mark.parametrize("name,wgs,gcj", EVILTRANSFORM_WGS_GCJ)
def test_eviltransform_forward(name, wgs, gcj):
    _assert_close_deg(wgs84_to_gcj02(*wgs), gcj)
    _assert_close_deg(from_wgs84(*wgs, Crs.GCJ02), gcj)


@pytest.mark.parametrize("name,wgs,gcj", EVILTRANSFORM_WGS_GCJ)
def test_eviltransform_exact_inverse(name, wgs, gcj):
    got = to_wgs84(*gcj, Crs.GCJ02)
    assert haversine_m(*got, *wgs) < INVERSE_TOL_M
    # Much better than the bound in practice (observed < 1e-6 m).
    assert haversine_m(*got, *wgs) < 1e-3
    assert haversine_m(*gcj02_to_wgs84(*gcj), *wgs) < 1e-3


def test_wandergis_forward_vectors():
    _assert_close_deg(wgs84_to_gcj02(*WANDERGIS_INPUT), WANDERGIS_WGS84_TO_GCJ02)
    _assert_close_deg(gcj02_to_bd09(*WANDERGIS_INPUT), WANDERGIS_GCJ02_TO_BD09)
    _assert_close_deg(wgs84_to_bd09(*WANDERGIS_INPUT), COORDTRANSFORM_RS_WGS84_TO_BD09)
    _assert_close_deg(from_wgs84(*WANDERGIS_INPUT, "bd09"), COORDTRANSFORM_RS_WGS84_TO_BD09)
    # Same constants and formula, so these agree far beyond the 1e-6 bound:
    _assert_close_deg(wgs84_to_gcj02(*WANDERGIS_INPUT), WANDERGIS_WGS84_TO_GCJ02, 1e-12)
    _assert_close_deg(gcj02_to_bd09(*WANDERGIS_INPUT), WANDERGIS_GCJ02_TO_BD09, 1e-12)


def test_bd09_exact_inverse_from_reference_vectors():
    # The coordtransform-rs forward vector, inverted, must land on the input.
    back = to_wgs84(*COORDTRANSFORM_RS_WGS84_TO_BD09, Crs.BD09)
    assert haversine_m(*back, *WANDERGIS_INPUT) < 1e-3
    assert haversine_m(*bd09_to_wgs84(*COORDTRANSFORM_RS_WGS84_TO_BD09), *WANDERGIS_INPUT) < 1e-3
    back = bd09_to_gcj02(*WANDERGIS_GCJ02_TO_BD09)
    assert haversine_m(*back, *WANDERGIS_INPUT) < 1e-3


def test_approximate_reference_inverses_are_close():
    # wandergis' one-step inverses are approximations. Ours is exact, so we only
    # expect to be near them, and our result must map forward to the input.
    ours = bd09_to_gcj02(*WANDERGIS_INPUT)
    assert haversine_m(*ours, *WANDERGIS_BD09_TO_GCJ02) < INVERSE_TOL_M
    _assert_close_deg(gcj02_to_bd09(*ours), WANDERGIS_INPUT, 1e-9)

    ours = gcj02_to_wgs84(*WANDERGIS_INPUT)
    assert haversine_m(*ours, *WANDERGIS_GCJ02_TO_WGS84) < INVERSE_TOL_M
    _assert_close_deg(wgs84_to_gcj02(*ours), WANDERGIS_INPUT, 1e-9)


# ---------------------------------------------------------------------------
# Sanity: the offset really is there.
def test_suzhou_offset_is_hundreds_of_metres():
    lon, lat = 120.62, 31.31
    g = from_wgs84(lon, lat, Crs.GCJ02)
    assert 300 < haversine_m(lon, lat, *g) < 800
    b = from_wgs84(lon, lat, Crs.BD09)
    assert haversine_m(lon, lat, *b) > 300
    assert haversine_m(*g, *b) > 300  # BD-09 is a further ~0.6-1 km shift
    w = to_wgs84(lon, lat, Crs.GCJ02)
    assert 300 < haversine_m(lon, lat, *w) < 800


def test_one_step_inverse_is_not_good_enough_but_ours_is():
    # Over a grid, the classic inverse g - offset(g) is metres off somewhere,
    # while ours stays far under the required 0.5 m.
    lon, lat = np.meshgrid(np.linspace(73.7, 134.7, 120), np.linspace(18.2, 53.5, 80))
    w = np.column_stack([lon.ravel(), lat.ravel()])
    g = from_wgs84_many(w, Crs.GCJ02)
    dlon, dlat = crs_mod._v_gcj_offset(g[:, 0], g[:, 1])
    naive_err = haversine_m(g[:, 0] - dlon, g[:, 1] - dlat, w[:, 0], w[:, 1])
    assert naive_err.max() > 1.0
    back = to_wgs84_many(g, Crs.GCJ02)
    err = haversine_m(back[:, 0], back[:, 1], w[:, 0], w[:, 1])
    assert err.max() < 1e-3

    b = from_wgs84_many(w, Crs.BD09)
    back = to_wgs84_many(b, Crs.BD09)
    err = haversine_m(back[:, 0], back[:, 1], w[:, 0], w[:, 1])
    assert err.max() < 1e-3


def test_singular_meridian_105():
    # The polynomial has sqrt(|lon - 105|), whose derivative blows up at 105°E.
    for lon in (105.0, 105.0 + 1e-12, 105.0 - 1e-12, 105.0 + 1e-7, 104.99):
        for lat in (23.0, 35.0, 50.0):
            for c in (Crs.GCJ02, Crs.BD09):
                g = from_wgs84(lon, lat, c)
                assert haversine_m(*to_wgs84(*g, c), lon, lat) < 1e-3
                w = to_wgs84(lon, lat, c)
                assert haversine_m(*from_wgs84(*w, c), lon, lat) < 1e-3


# ---------------------------------------------------------------------------
# Property tests
finite = dict(allow_nan=False, allow_infinity=False)
china_lon = st.floats(73.7, 134.7, **finite)
china_lat = st.floats(18.2, 53.5, **finite)
chinese_crs = st.sampled_from([Crs.GCJ02, Crs.BD09])


@settings(max_examples=300, deadline=None)
@given(lon=china_lon, lat=china_lat, c=chinese_crs)
def test_prop_wgs_forward_then_inverse(lon, lat, c):
    fwd = from_wgs84(lon, lat, c)
    assert haversine_m(lon, lat, *fwd) > 1.0  # something actually happened
    back = to_wgs84(*fwd, c)
    assert haversine_m(*back, lon, lat) < INVERSE_TOL_M


@settings(max_examples=300, deadline=None)
@given(lon=china_lon, lat=china_lat, c=chinese_crs)
def test_prop_inverse_then_forward(lon, lat, c):
    # A point read from an AMap/Baidu map: to WGS-84 and back reproduces it.
    w = to_wgs84(lon, lat, c)
    back = from_wgs84(*w, c)
    assert haversine_m(*back, lon, lat) < INVERSE_TOL_M


@settings(max_examples=300, deadline=None)
@given(lon=china_lon, lat=china_lat)
def test_prop_gcj_bd_chain_consistent(lon, lat):
    # bd09 -> wgs84 equals bd09 -> gcj02 -> wgs84, and wgs84 -> bd09 equals the chain.
    b = wgs84_to_bd09(lon, lat)
    assert b == gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
    w1 = bd09_to_wgs84(lon, lat)
    w2 = gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
    assert haversine_m(*w1, *w2) < 1e-6


def _outside_point():
    lon = st.floats(-180, 180, **finite)
    lat = st.floats(-90, 90, **finite)
    return st.tuples(lon, lat).filter(lambda p: is_out_of_china(*p))


@settings(max_examples=300, deadline=None)
@given(p=_outside_point(), c=st.sampled_from(list(Crs)))
def test_prop_outside_china_passthrough(p, c):
    lon, lat = p
    assert to_wgs84(lon, lat, c) == (lon, lat)
    assert from_wgs84(lon, lat, c) == (lon, lat)
    arr = np.array([p] * 3 + [p] * 20)  # both the small and the numpy paths
    np.testing.assert_array_equal(to_wgs84_many(arr, c), arr)
    np.testing.assert_array_equal(from_wgs84_many(arr, c), arr)


@settings(max_examples=100, deadline=None)
@given(
    pts=st.lists(
        st.one_of(
            st.tuples(china_lon, china_lat),
            st.tuples(st.floats(-180, 180, **finite), st.floats(-90, 90, **finite)),
        ),
        min_size=0,
        max_size=40,
    ),
    c=st.sampled_from(list(Crs)),
)
def test_prop_many_matches_scalar(pts, c):
    arr = np.array(pts, dtype=float).reshape(-1, 2)
    for many, one in ((to_wgs84_many, to_wgs84), (from_wgs84_many, from_wgs84)):
        got = many(pts, c)
        assert got.shape == arr.shape
        want = np.array([one(x, y, c) for x, y in pts], dtype=float).reshape(-1, 2)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    lon=st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), china_lon),
    lat=st.one_of(st.just(math.nan), st.just(math.inf), china_lat),
    c=st.sampled_from(list(Crs)),
)
def test_prop_nonfinite_rejected(lon, lat, c):
    if math.isfinite(lon) and math.isfinite(lat):
        to_wgs84(lon, lat, c)  # fine
        return
    with pytest.raises(ValueError):
        to_wgs84(lon, lat, c)
    with pytest.raises(ValueError):
        from_wgs84(lon, lat, c)
    with pytest.raises(ValueError):
        to_wgs84_many([(120.0, 30.0), (lon, lat)], c)
    with pytest.raises(ValueError):
        from_wgs84_many([(120.0, 30.0)] * 20 + [(lon, lat)], c)


# ---------------------------------------------------------------------------
# The out-of-China test is the published rectangle, not the border.
def test_bbox_is_the_published_rectangle():
    assert CHINA_BBOX == (72.004, 0.8293, 137.8347, 55.8271)
    # Inclusive edges, as in eviltransform / coordtransform-rs.
    assert not is_out_of_china(72.004, 0.8293)
    assert not is_out_of_china(137.8347, 55.8271)
    assert is_out_of_china(72.0039, 30.0)
    assert is_out_of_china(120.0, 55.8272)
    # Seoul is inside the rectangle, so it IS shifted, like in every published
    # implementation. Tokyo (139.69°E) is outside and is not.
    assert not is_out_of_china(126.978, 37.5665)
    assert from_wgs84(126.978, 37.5665, Crs.GCJ02) != (126.978, 37.5665)
    assert from_wgs84(139.6917, 35.6895, Crs.GCJ02) == (139.6917, 35.6895)
    assert from_wgs84(2.35, 48.85, "bd09") == (2.35, 48.85)


# ---------------------------------------------------------------------------
# API details
def test_crs_enum_and_strings():
    assert [c.value for c in Crs] == ["wgs84", "gcj02", "bd09"]
    assert Crs("gcj02") is Crs.GCJ02
    assert str(Crs.BD09) == "bd09"
    p = (120.62, 31.31)
    ref = from_wgs84(*p, Crs.GCJ02)
    assert from_wgs84(*p, "gcj02") == ref
    assert from_wgs84(*p, "GCJ02") == ref
    assert to_wgs84(*p, Crs.WGS84) == p
    assert from_wgs84(*p, "wgs84") == p
    for bad in ("epsg:4326", "", None, 3, "bd09mc"):
        with pytest.raises(ValueError):
            to_wgs84(*p, bad)
        with pytest.raises(ValueError):
            from_wgs84_many([p], bad)


def test_scalar_input_types():
    assert to_wgs84(120, 31, "wgs84") == (120.0, 31.0)
    assert isinstance(to_wgs84(np.float32(120.5), np.int64(31), "gcj02")[0], float)
    with pytest.raises(TypeError):
        to_wgs84("120", "31", "gcj02")
    with pytest.raises(ValueError):
        wgs84_to_gcj02(math.nan, 30.0)
    with pytest.raises(ValueError):
        bd09_to_wgs84(120.0, math.inf)
    with pytest.raises(ValueError):
        is_out_of_china(math.nan, 0.0)


def test_many_shapes_and_no_mutation():
    arr = np.array([[120.62, 31.31], [121.47, 31.23], [2.35, 48.85]])
    orig = arr.copy()
    out = from_wgs84_many(arr, Crs.GCJ02)
    np.testing.assert_array_equal(arr, orig)
    assert out.dtype == np.float64 and out.shape == (3, 2)
    np.testing.assert_array_equal(out[2], arr[2])  # Paris untouched
    # z column passes through, extra leading dims are kept
    xyz = np.array([[[120.62, 31.31, 12.5], [121.47, 31.23, math.nan]]])
    out3 = to_wgs84_many(xyz, "bd09")
    assert out3.shape == (1, 2, 3)
    assert out3[0, 0, 2] == 12.5 and math.isnan(out3[0, 1, 2])
    np.testing.assert_allclose(out3[0, 0, :2], to_wgs84(120.62, 31.31, "bd09"), atol=1e-12)
    # empty input
    assert to_wgs84_many([], "gcj02").shape == (0, 2)
    assert to_wgs84_many(np.empty((0, 2)), "gcj02").shape == (0, 2)
    # single pair
    np.testing.assert_allclose(
        from_wgs84_many((120.62, 31.31), "gcj02"), from_wgs84(120.62, 31.31, "gcj02"), atol=1e-12
    )
    # ints are accepted, strings are not
    assert from_wgs84_many([[120, 31]], "wgs84").dtype == np.float64
    with pytest.raises(TypeError):
        from_wgs84_many([["120", "31"]], "gcj02")
    with pytest.raises(ValueError):
        from_wgs84_many([[120.0, 31.0, 1.0, 2.0]], "gcj02")


def test_many_large_batch_matches_scalar():
    rng = np.random.default_rng(7)
    n = 2000
    pts = np.column_stack([rng.uniform(60, 150, n), rng.uniform(-5, 60, n)])
    for c in Crs:
        got = to_wgs84_many(pts, c)
        want = np.array([to_wgs84(x, y, c) for x, y in pts])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        got = from_wgs84_many(pts, c)
        want = np.array([from_wgs84(x, y, c) for x, y in pts])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------
# Shapely helpers
def test_geometry_roundtrip_polygon():
    # A small polygon around Suzhou's Humble Administrator's Garden, in GCJ-02.
    ring = [
        (120.6285, 31.3240),
        (120.6310, 31.3240),
        (120.6310, 31.3262),
        (120.6285, 31.3262),
        (120.6285, 31.3240),
    ]
    poly = Polygon(ring, holes=[[(120.629, 31.325), (120.630, 31.325), (120.630, 31.326), (120.629, 31.325)]])
    w = geometry_to_wgs84(poly, Crs.GCJ02)
    assert w.geom_type == "Polygon" and w.is_valid
    for (x, y), (wx, wy) in zip(poly.exterior.coords, w.exterior.coords):
        assert (wx, wy) == pytest.approx(to_wgs84(x, y, Crs.GCJ02), abs=1e-12)
    assert haversine_m(*poly.exterior.coords[0], *w.exterior.coords[0]) > 300
    back = geometry_from_wgs84(w, Crs.GCJ02)
    err = haversine_m(*np.asarray(poly.exterior.coords).T, *np.asarray(back.exterior.coords).T)
    assert err.max() < 1e-3
    assert len(back.interiors) == 1


def test_geometry_keeps_z_and_handles_arrays_and_empty():
    p3 = Point(120.62, 31.31, 7.0)
    out = geometry_from_wgs84(p3, "bd09")
    assert out.has_z and out.z == 7.0
    assert (out.x, out.y) == pytest.approx(from_wgs84(120.62, 31.31, "bd09"), abs=1e-12)
    arr = np.array([Point(120.62, 31.31), LineString([(2.35, 48.85), (2.36, 48.86)]), None])
    res = geometry_to_wgs84(arr, "gcj02")
    assert res[2] is None
    assert shapely.equals_exact(res[1], arr[1], tolerance=0)  # Paris untouched
    assert shapely.is_empty(geometry_to_wgs84(Polygon(), "gcj02"))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_geometry_rejects_nan():
    with pytest.raises(ValueError):
        geometry_to_wgs84(LineString([(120.0, 30.0), (math.nan, 30.1)]), "gcj02")
