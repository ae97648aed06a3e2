"""AR anchors over HTTP: nearby and time-filtered queries, output formats, validated writes, access.

Runs on both backends. Expected values are computed from the fixture file and the written
conventions, not from the service code.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tourapi.geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from tourapi.geo.geometry import haversine_m
from tourapi.settings import DEFAULT_FIXTURES
from tourapi.timeutil import parse_schedule

FIXTURE = json.loads((DEFAULT_FIXTURES / "anchors.json").read_text(encoding="utf-8"))["anchors"]
BY_ID = {a["id"]: a for a in FIXTURE}
SAT_NIGHT = "2026-07-18T20:30:00+08:00"  # a Saturday in July
SAT_AFTERNOON = "2026-07-18T14:00:00+08:00"
TUE_NIGHT = "2026-07-21T20:00:00+08:00"
JAN_SAT_NIGHT = "2026-01-17T20:30:00+08:00"
AFTER_MIDNIGHT = "2026-07-19T00:45:00+08:00"
SHANTANG = (120.5990, 31.3190)
OLD_TOWN = (120.6200, 31.3100)
NETS = (120.629889, 31.300333)  # Master of the Nets Garden, WGS-84
GEOPOSE_JSON = "application/geopose+json"


def _position(anchor: dict) -> tuple[float, float]:
    p = anchor["geopose"]["position"]
    return p["lon"], p["lat"]


def _unit(q: dict) -> np.ndarray:
    v = np.array([q["x"], q["y"], q["z"], q["w"]], dtype=float)
    return v / np.linalg.norm(v)


def _same_rotation(a: np.ndarray, b: np.ndarray) -> bool:
    return abs(abs(float(np.dot(a, b))) - 1.0) < 1e-9


def rotation_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _new_anchor(**changes) -> dict:
    kunqu = BY_ID["nets-evening-kunqu"]
    marker = next(m for m in kunqu["localization"] if m["method"] == "image")
    body = {
        "id": "test-nets-crane",
        "poi_id": "master-of-the-nets-garden",
        "geopose": {
            "position": {"lat": NETS[1], "lon": NETS[0], "h": 0.5},
            "quaternion": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0},
        },
        "altitude_mode": "terrain",
        "assets": copy.deepcopy(kunqu["assets"]),
        "caption": {"zh-Hans": "测试仙鹤", "en": "Test crane"},
        "visibility": {"schedule": "Mo-Su 19:00-22:00", "radius_m": 30},
        "localization": [
            {"method": "geospatial"},
            copy.deepcopy(marker),
            {"method": "gps", "error_m": 8},
        ],
        "narration": copy.deepcopy(kunqu["narration"]),
        "accuracy": {"horizontal_m": 1.5, "vertical_m": 1.0, "heading_deg": 5},
    }
    body.update(changes)
    return body


# ---- reads -----------------------------------------------------------------------------------------------


async def test_nearby_sorted_nearest_first_with_distances(client) -> None:
    lon, lat, radius = *SHANTANG, 400
    response = await client.get(
        "/v1/anchors", params={"lon": lon, "lat": lat, "radius": radius, "at": SAT_NIGHT}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    anchors = response.json()["anchors"]
    moment = datetime.fromisoformat(SAT_NIGHT)
    expected = sorted(
        (haversine_m(lon, lat, *_position(a)), a["id"])
        for a in FIXTURE
        if parse_schedule(a["visibility"]["schedule"]).is_open(moment)
    )
    expected = [(d, i) for d, i in expected if d <= radius]
    assert len(expected) >= 5
    assert [a["id"] for a in anchors] == [i for _, i in expected]
    for anchor, (distance, _) in zip(anchors, expected):
        assert math.isclose(anchor["distance_m"], distance, abs_tol=0.2)
        assert anchor["in_range"] is (distance <= BY_ID[anchor["id"]]["visibility"]["radius_m"])
        assert anchor["visibility"]["visible"] is True
    assert [a["distance_m"] for a in anchors] == sorted(a["distance_m"] for a in anchors)


async def test_at_shows_night_scenes_only_when_their_schedule_is_on(client) -> None:
    async def ids_at(at: str) -> set[str]:
        params = {"lon": OLD_TOWN[0], "lat": OLD_TOWN[1], "radius": 5000, "at": at}
        response = await client.get("/v1/anchors", params=params)
        assert response.status_code == 200, response.text
        return {a["id"] for a in response.json()["anchors"]}

    assert await ids_at(SAT_AFTERNOON) == set(), "night scenes are hidden in the afternoon"
    saturday = await ids_at(SAT_NIGHT)
    assert {"humble-scholar-pavilion", "nets-evening-kunqu", "shantang-lanterns-tongguiqiao"} <= saturday
    tuesday = await ids_at(TUE_NIGHT)
    assert "humble-scholar-pavilion" not in tuesday  # Jul-Aug Fr-Su,PH only
    assert "nets-evening-kunqu" in tuesday  # Apr-Oct every night
    january = await ids_at(JAN_SAT_NIGHT)
    assert "nets-evening-kunqu" not in january and "shantang-lanterns-tongguiqiao" in january  # sunset-23:00
    late = await ids_at(AFTER_MIDNIGHT)
    assert {"gucheng-deck-lanterns", "fenghuang-food-lanterns"} <= late  # spans past midnight
    assert "shantang-lanterns-tongguiqiao" not in late


async def test_at_defaults_to_now(client) -> None:
    response = await client.get("/v1/anchors", params={"lon": SHANTANG[0], "lat": SHANTANG[1]})
    assert response.status_code == 200
    at = datetime.fromisoformat(response.json()["at"])
    assert abs(at - datetime.now(UTC)) < timedelta(minutes=1)
    assert at.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    "params,field",
    [
        ({"lon": 120.6, "lat": 31.3, "radius": 0}, "radius"),
        ({"lon": 120.6, "lat": 31.3, "radius": -10}, "radius"),
        ({"lon": 120.6, "lat": 31.3, "radius": 5001}, "radius"),
        ({"lon": 120.6, "lat": 31.3, "radius": "nan"}, "radius"),
        ({"lat": 31.3, "radius": 100}, "lon"),
        ({"lon": 120.6, "radius": 100}, "lat"),
        ({"lon": 120.6, "lat": 95, "radius": 100}, "lat"),
        ({"lon": 120.6, "lat": 31.3, "at": "tonight"}, "at"),
        ({"lon": 120.6, "lat": 31.3, "frame": "opengl"}, "query.frame"),
        ({"lon": 120.6, "lat": 31.3, "limit": 0}, "query.limit"),
    ],
)
async def test_bad_nearby_parameters_are_named(client, params: dict, field: str) -> None:
    response = await client.get("/v1/anchors", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_radius_upper_bound_is_accepted_and_limit_pages(client) -> None:
    params = {"lon": OLD_TOWN[0], "lat": OLD_TOWN[1], "radius": 5000, "at": SAT_NIGHT}
    everything = (await client.get("/v1/anchors", params=params)).json()
    first = (await client.get("/v1/anchors", params={**params, "limit": 3})).json()
    second = (await client.get("/v1/anchors", params={**params, "limit": 3, "offset": 3})).json()
    ids = [a["id"] for a in everything["anchors"]]
    assert len(ids) > 6
    assert [a["id"] for a in first["anchors"] + second["anchors"]] == ids[:6]
    assert first["next_offset"] == 3 and everything["next_offset"] is None


async def test_poi_sub_resource_lists_its_anchors_with_visibility(client) -> None:
    poi = "master-of-the-nets-garden"
    expected = sorted(a["id"] for a in FIXTURE if a["poi_id"] == poi)
    night = await client.get(f"/v1/pois/{poi}/anchors", params={"at": SAT_NIGHT, "lang": "en"})
    assert night.status_code == 200, night.text
    body = night.json()
    assert body["poi_id"] == poi and [a["id"] for a in body["anchors"]] == expected
    kunqu = next(a for a in body["anchors"] if a["id"] == "nets-evening-kunqu")
    assert kunqu["visibility"]["visible"] is True
    assert kunqu["caption"] == BY_ID["nets-evening-kunqu"]["caption"]["en"] and kunqu["lang"] == "en"
    assert kunqu["i18n"]["caption"] == BY_ID["nets-evening-kunqu"]["caption"]
    assert kunqu["assets"] == BY_ID["nets-evening-kunqu"]["assets"]
    day = await client.get(f"/v1/pois/{poi}/anchors", params={"at": SAT_AFTERNOON})
    assert [a["visibility"]["visible"] for a in day.json()["anchors"]] == [False] * len(expected)
    assert (await client.get("/v1/pois/no-such-garden/anchors")).status_code == 404


async def test_geopose_json_is_the_bare_geopose_list(client) -> None:
    headers = {"Accept": GEOPOSE_JSON}
    poi = "shantang-street"
    response = await client.get(f"/v1/pois/{poi}/anchors", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(GEOPOSE_JSON)
    items = response.json()
    assert isinstance(items, list)
    assert [i["id"] for i in items] == sorted(a["id"] for a in FIXTURE if a["poi_id"] == poi)
    for item in items:
        assert set(item) == {"id", "position", "quaternion", "altitude_mode"}
        fixture = BY_ID[item["id"]]
        for key in ("lat", "lon", "h"):
            assert math.isclose(item["position"][key], fixture["geopose"]["position"][key], abs_tol=1e-9)
        assert _same_rotation(_unit(item["quaternion"]), _unit(fixture["geopose"]["quaternion"]))
        assert item["altitude_mode"] == fixture["altitude_mode"]

    near = {"lon": SHANTANG[0], "lat": SHANTANG[1], "radius": 400, "at": SAT_NIGHT}
    as_json = (await client.get("/v1/anchors", params=near)).json()["anchors"]
    as_geopose = (await client.get("/v1/anchors", params=near, headers=headers)).json()
    assert [i["id"] for i in as_geopose] == [a["id"] for a in as_json]

    one = await client.get("/v1/anchors/nets-evening-kunqu", headers=headers)
    assert one.headers["content-type"].startswith(GEOPOSE_JSON)
    assert one.json()["id"] == "nets-evening-kunqu" and "position" in one.json()

    mixed = await client.get("/v1/anchors/nets-evening-kunqu", params={"frame": "arcore"}, headers=headers)
    assert mixed.status_code == 422 and mixed.json()["field"] == "frame"


async def test_frame_parameter_converts_to_the_platforms_east_up_south(client) -> None:
    # humble-scholar-pavilion faces South (azimuth 180): its GeoPose is a half turn about Up.
    enu = (await client.get("/v1/anchors/humble-scholar-pavilion")).json()
    assert enu["frame"] == "enu"
    assert _same_rotation(_unit(enu["geopose"]["quaternion"]), np.array([0, 0, 1.0, 0]))
    for frame in ("arcore", "arkit"):
        body = (await client.get("/v1/anchors/humble-scholar-pavilion", params={"frame": frame})).json()
        assert body["frame"] == frame
        assert body["geopose"]["position"] == enu["geopose"]["position"]
        # The platforms' identity already faces a glTF/USDZ asset's +Z front South.
        assert _same_rotation(_unit(body["geopose"]["quaternion"]), np.array([0, 0, 0, 1.0]))
    # humble-koi-pond faces East (azimuth 90): in East-Up-South the asset's +Z front points East.
    koi = (await client.get("/v1/anchors/humble-koi-pond", params={"frame": "arcore"})).json()
    matrix = rotation_matrix(_unit(koi["geopose"]["quaternion"]))
    np.testing.assert_allclose(matrix @ [0, 0, 1], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(matrix @ [0, 1, 0], [0, 1, 0], atol=1e-6)


# ---- writes ----------------------------------------------------------------------------------------------


async def test_admin_creates_patches_replaces_and_soft_deletes(client, auth) -> None:
    admin = await auth("admin")
    created = await client.post("/v1/anchors", json=_new_anchor(), headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/anchors/test-nets-crane"
    assert created.json()["narration"]["sha256"] == BY_ID["nets-evening-kunqu"]["narration"]["sha256"]
    near = {"lon": NETS[0], "lat": NETS[1], "radius": 100, "at": SAT_NIGHT}
    nearby = (await client.get("/v1/anchors", params=near)).json()["anchors"]
    assert nearby[0]["id"] == "test-nets-crane" and nearby[0]["distance_m"] == 0

    patched = await client.patch(
        "/v1/anchors/test-nets-crane", json={"caption": {"zh-Hans": "仙鹤", "en": "Crane"}}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["i18n"]["caption"] == {"zh-Hans": "仙鹤", "en": "Crane"}
    assert patched.json()["geopose"] == created.json()["geopose"]

    replaced = await client.put(
        "/v1/anchors/test-nets-crane",
        json={k: v for k, v in _new_anchor(altitude_mode="rooftop").items() if k != "id"},
        headers=admin,
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["altitude_mode"] == "rooftop"

    assert (await client.delete("/v1/anchors/test-nets-crane", headers=admin)).status_code == 204
    assert (await client.get("/v1/anchors/test-nets-crane")).status_code == 404
    assert (await client.patch("/v1/anchors/test-nets-crane", json={}, headers=admin)).status_code == 404
    nearby = (await client.get("/v1/anchors", params=near)).json()["anchors"]
    assert "test-nets-crane" not in {a["id"] for a in nearby}
    listing = (await client.get("/v1/pois/master-of-the-nets-garden/anchors")).json()["anchors"]
    assert "test-nets-crane" not in {a["id"] for a in listing}

    again = await client.post("/v1/anchors", json=_new_anchor(), headers=admin)
    assert again.status_code == 201, "a deleted id may be created again"
    duplicate = await client.post("/v1/anchors", json=_new_anchor(), headers=admin)
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "id"


async def test_create_without_id_gets_one(client, auth) -> None:
    body = _new_anchor()
    del body["id"]
    response = await client.post("/v1/anchors", json=body, headers=await auth("operator"))
    assert response.status_code == 201, response.text
    new_id = response.json()["id"]
    assert (await client.get(f"/v1/anchors/{new_id}")).status_code == 200


async def test_small_quaternion_drift_is_normalised(client, auth) -> None:
    body = _new_anchor()
    body["geopose"]["quaternion"] = {"x": 0.0, "y": 0.0, "z": 0.7075, "w": 0.7075}  # |q| = 1.00056
    response = await client.post("/v1/anchors", json=body, headers=await auth("admin"))
    assert response.status_code == 201, response.text
    stored = (await client.get("/v1/anchors/test-nets-crane")).json()["geopose"]["quaternion"]
    assert math.isclose(math.hypot(*stored.values()), 1.0, abs_tol=1e-8)
    assert math.isclose(stored["z"], math.sqrt(0.5), abs_tol=1e-8) and stored["z"] == stored["w"]


def _with(path: str, value) -> dict:
    body = _new_anchor()
    target = body
    *parents, leaf = path.split(".")
    for key in parents:
        target = target[key]
    target[leaf] = value
    return body


@pytest.mark.parametrize(
    "path,value,field",
    [
        ("geopose.quaternion", {"x": 0, "y": 0, "z": 0, "w": 1.2}, "geopose.quaternion"),
        ("geopose.quaternion", {"x": 0.5, "y": 0.5, "z": 0.5, "w": 0.6}, "geopose.quaternion"),
        ("geopose.quaternion", {"x": 0, "y": 0, "z": 0, "w": 0}, "geopose.quaternion"),
        ("geopose.quaternion.w", float("nan"), "geopose.quaternion.w"),
        ("geopose.position.lat", 91.0, "geopose.position.lat"),
        ("geopose.position.lat", -90.5, "geopose.position.lat"),
        ("geopose.position.lon", 181.0, "geopose.position.lon"),
        ("geopose.position.h", 9000.5, "geopose.position.h"),
        ("geopose.position.h", -501.0, "geopose.position.h"),
        ("geopose.position.lat", float("nan"), "geopose.position.lat"),
        ("geopose.position.lon", float("nan"), "geopose.position.lon"),
        ("geopose.position.h", float("inf"), "geopose.position.h"),
        ("geopose.position.h", "NaN", "geopose.position.h"),
    ],
)
async def test_invalid_poses_get_a_422_naming_the_field(client, auth, path: str, value, field: str) -> None:
    # json.dumps writes NaN/Infinity literals, as many clients do; they must be named, not a 400.
    content = json.dumps(_with(path, value)).encode()
    headers = {**await auth("admin"), "Content-Type": "application/json"}
    response = await client.post("/v1/anchors", content=content, headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field, body
    assert body["type"] == "urn:tourapi:problem:invalid-input"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/v1/anchors/test-nets-crane")).status_code == 404, "nothing half-written"


@pytest.mark.parametrize("h", [-500.0, 9000.0])
async def test_height_limits_are_inclusive(client, auth, h: float) -> None:
    response = await client.post(
        "/v1/anchors", json=_with("geopose.position.h", h), headers=await auth("admin")
    )
    assert response.status_code == 201, response.text
    assert response.json()["geopose"]["position"]["h"] == h


def _asset(**changes) -> dict:
    return {**BY_ID["nets-evening-kunqu"]["assets"][0], **changes}


AUDIO = BY_ID["nets-evening-kunqu"]["narration"]
USDZ = next(a for a in BY_ID["nets-evening-kunqu"]["assets"] if a["media_type"] == "model/vnd.usdz+zip")


@pytest.mark.parametrize(
    "changes,field,slug",
    [
        ({"assets": [_asset(uri="http://cdn.example.com/x.glb")]}, "assets[0].uri", "invalid-input"),
        ({"assets": [_asset(uri="ftp://cdn.example.com/x.glb")]}, "assets[0].uri", "invalid-input"),
        ({"assets": [_asset(uri="/static/x.glb")]}, "assets[0].uri", "invalid-input"),
        ({"assets": [_asset(uri="/media/" + "0" * 64)]}, "assets[0].uri", "invalid-input"),
        ({"assets": [_asset(sha256="A" * 64)]}, "body.assets[0].sha256", "invalid-input"),
        ({"assets": [_asset(sha256="abc")]}, "body.assets[0].sha256", "invalid-input"),
        ({"assets": [_asset(bytes=0)]}, "body.assets[0].bytes", "invalid-input"),
        ({"assets": [_asset(bytes=10**12)]}, "body.assets[0].bytes", "invalid-input"),
        ({"assets": [_asset(media_type="text/html")]}, "body.assets[0].media_type", "invalid-input"),
        ({"assets": []}, "body.assets", "invalid-input"),
        ({"assets": [_asset(), _asset()]}, "assets[1]", "invalid-input"),
        ({"assets": [{**USDZ, "platform": "android"}]}, "assets[0].platform", "invalid-input"),
        ({"narration": _asset()}, "narration.media_type", "invalid-input"),
        ({"localization": [{"method": "geospatial"}]}, "localization", "invalid-input"),
        (
            {"localization": [{"method": "image", "marker": AUDIO, "physical_width_m": 0.5}]},
            "localization[0].marker.media_type",
            "invalid-input",
        ),
        (
            {"localization": [{"method": "gps", "error_m": 5}, {"method": "gps", "error_m": 9}]},
            "localization[1]",
            "invalid-input",
        ),
        ({"localization": [{"method": "magic"}]}, "body.localization[0].method", "invalid-input"),
        (
            {"localization": [{"method": "vps", "provider": "easyar"}]},
            "body.localization[0]",
            "invalid-input",
        ),
        (
            {"visibility": {"schedule": "Mo-Fr 25:00-26:00", "radius_m": 30}},
            "visibility.schedule",
            "invalid-opening-hours",
        ),
        (
            {"visibility": {"schedule": "Mo-Su 19:00-22:00", "radius_m": 0}},
            "body.visibility.radius_m",
            "invalid-input",
        ),
        ({"caption": {"en": "Only English"}}, "caption.zh-Hans", "invalid-input"),
        ({"altitude_mode": "sea_level"}, "body.altitude_mode", "invalid-input"),
        ({"poi_id": "no-such-garden"}, "poi_id", "invalid-input"),
        (
            {"route_stop": {"route_id": "Not A Slug", "stop_index": 0}},
            "body.route_stop.route_id",
            "invalid-input",
        ),
    ],
)
async def test_invalid_content_gets_a_named_422(client, auth, changes: dict, field: str, slug: str) -> None:
    response = await client.post("/v1/anchors", json=_new_anchor(**changes), headers=await auth("admin"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field, body
    assert body["type"] == f"urn:tourapi:problem:{slug}"
    assert (await client.get("/v1/anchors/test-nets-crane")).status_code == 404


async def test_anchor_far_from_its_venue_is_refused(client, auth) -> None:
    lingering = BY_ID["lingering-scholar-hall"]["geopose"]["position"]
    body = _with("geopose.position", dict(lingering))
    response = await client.post("/v1/anchors", json=body, headers=await auth("admin"))
    assert response.status_code == 422 and response.json()["field"] == "geopose.position"


@pytest.mark.parametrize("crs,forward", [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
async def test_chinese_crs_input_is_stored_as_wgs84(client, auth, crs: str, forward) -> None:
    admin = await auth("admin")
    marker_wgs = (NETS[0] + 0.00005, NETS[1] + 0.00003)
    body = _new_anchor(crs=crs)
    lon, lat = forward(*NETS)
    body["geopose"]["position"].update(lon=lon, lat=lat)
    mlon, mlat = forward(*marker_wgs)
    body["localization"][1]["marker_geopose"] = {
        "position": {"lat": mlat, "lon": mlon, "h": 1.2},
        "quaternion": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0},
    }
    # The same numbers read as WGS-84 are hundreds of metres off: refused, not silently misplaced.
    wrong = await client.post("/v1/anchors", json={**body, "crs": "wgs84"}, headers=admin)
    assert wrong.status_code == 422 and wrong.json()["field"] == "geopose.position"

    response = await client.post("/v1/anchors", json=body, headers=admin)
    assert response.status_code == 201, response.text
    stored = (await client.get("/v1/anchors/test-nets-crane", params={"crs": crs})).json()
    position = stored["geopose"]["position"]
    assert haversine_m(position["lon"], position["lat"], *NETS) < 0.05, "output is always WGS-84"
    marker = stored["localization"][1]["marker_geopose"]["position"]
    assert haversine_m(marker["lon"], marker["lat"], *marker_wgs) < 0.05

    moved = forward(NETS[0] + 0.0001, NETS[1])
    patched = await client.patch(
        "/v1/anchors/test-nets-crane",
        json={
            "crs": crs,
            "geopose": {
                "position": {"lat": moved[1], "lon": moved[0], "h": 0},
                "quaternion": {"x": 0, "y": 0, "z": 0, "w": 1},
            },
        },
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    position = patched.json()["geopose"]["position"]
    assert haversine_m(position["lon"], position["lat"], NETS[0] + 0.0001, NETS[1]) < 0.05


# ---- access ----------------------------------------------------------------------------------------------


async def test_staff_edit_only_anchors_of_their_own_venues(client, auth) -> None:
    staff = await auth("staff-nets")  # staff of master-of-the-nets-garden and humble-administrators-garden
    own = await client.post("/v1/anchors", json=_new_anchor(), headers=staff)
    assert own.status_code == 201, own.text
    edit = await client.patch(
        "/v1/anchors/nets-evening-kunqu",
        json={"visibility": {"schedule": "Mo-Su 19:00-21:00", "radius_m": 25}},
        headers=staff,
    )
    assert edit.status_code == 200, edit.text

    other = "shantang-lanterns-tongguiqiao"
    foreign_body = {k: v for k, v in BY_ID[other].items() if k != "id"}
    for response in (
        await client.patch(f"/v1/anchors/{other}", json={"scale": 3.0}, headers=staff),
        await client.put(f"/v1/anchors/{other}", json=foreign_body, headers=staff),
        await client.delete(f"/v1/anchors/{other}", headers=staff),
        await client.post("/v1/anchors", json={**BY_ID[other], "id": "staff-sneaks-in"}, headers=staff),
    ):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    # Moving an anchor of their own venue to another venue is refused too.
    lion = BY_ID["lion-grove-rockery-lanterns"]
    move = await client.patch(
        "/v1/anchors/test-nets-crane",
        json={"poi_id": "lion-grove-garden", "geopose": lion["geopose"]},
        headers=staff,
    )
    assert move.status_code == 403
    assert (await client.get(f"/v1/anchors/{other}")).json()["scale"] == BY_ID[other]["scale"]

    operator = await auth("operator")
    assert (
        await client.patch(f"/v1/anchors/{other}", json={"scale": 3.0}, headers=operator)
    ).status_code == 200
    assert (await client.delete(f"/v1/anchors/{other}", headers=operator)).status_code == 204
    assert (await client.post("/v1/anchors", json=_new_anchor(id="anonymous"))).status_code == 401


async def test_anchors_of_a_deleted_poi_disappear(client, auth) -> None:
    admin = await auth("admin")
    assert (await client.delete("/v1/pois/master-of-the-nets-garden", headers=admin)).status_code == 204
    params = {"lon": NETS[0], "lat": NETS[1], "radius": 200, "at": SAT_NIGHT}
    ids = {a["id"] for a in (await client.get("/v1/anchors", params=params)).json()["anchors"]}
    assert not ids & {a["id"] for a in FIXTURE if a["poi_id"] == "master-of-the-nets-garden"}
    assert (await client.get("/v1/pois/master-of-the-nets-garden/anchors")).status_code == 404


# ---- sync and bundles ------------------------------------------------------------------------------------


async def test_bundle_records_carry_asset_hashes(runtime) -> None:
    from tourapi.domain.anchors.hooks import anchor_asset_refs, anchors_for_pois

    pois = ["master-of-the-nets-garden", "shantang-street"]
    async with runtime.sessionmaker() as session:
        records = await anchors_for_pois(session, pois)
    fixture = [a for a in FIXTURE if a["poi_id"] in pois]
    assert sorted(r["id"] for r in records) == sorted(a["id"] for a in fixture)
    for record in records:
        assert record["assets"] == BY_ID[record["id"]]["assets"]
        assert record["caption"] == BY_ID[record["id"]]["caption"]
    expected = set()
    for anchor in fixture:
        expected |= {a["sha256"] for a in anchor["assets"]}
        expected |= {anchor["narration"]["sha256"]} if anchor.get("narration") else set()
        expected |= {m["marker"]["sha256"] for m in anchor["localization"] if m["method"] == "image"}
    refs = anchor_asset_refs(records)
    assert [r["sha256"] for r in refs] == sorted(expected)
    assert all(r["uri"] == f"/media/{r['sha256']}" and r["bytes"] > 0 for r in refs)


async def test_anchor_table_matches_its_migration(settings, backend) -> None:
    if backend != "postgis":
        pytest.skip("the embedded schema comes from the models themselves")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from geoalchemy2 import alembic_helpers
    from sqlalchemy.ext.asyncio import create_async_engine

    from tourapi.db.base import Base

    def include(obj, name, kind, reflected, compare_to):
        table = obj if kind == "table" else getattr(obj, "table", None)
        if table is not None and getattr(table, "name", None) != "anchors":
            return False
        return alembic_helpers.include_object(obj, name, kind, reflected, compare_to)

    def diff(connection):
        context = MigrationContext.configure(
            connection, opts={"include_object": include, "compare_type": True}
        )
        return compare_metadata(context, Base.metadata)

    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_media_paths_must_name_a_stored_file(client, auth) -> None:
    admin = await auth("admin")
    missing = "e" * 64
    body = _new_anchor(assets=[_asset(uri=f"/media/{missing}", sha256=missing)])
    response = await client.post("/v1/anchors", json=body, headers=admin)
    assert response.status_code == 422 and response.json()["field"] == "assets[0].uri", response.text
    stored = BY_ID["nets-evening-kunqu"]["assets"][0]
    wrong_size = await client.post(
        "/v1/anchors", json=_new_anchor(assets=[_asset(bytes=stored["bytes"] + 1)]), headers=admin
    )
    assert wrong_size.status_code == 422 and wrong_size.json()["field"] == "assets[0].bytes"
    served = await client.get(stored["uri"])
    assert served.status_code == 200 and served.headers["content-type"].startswith("model/gltf-binary")
    assert len(served.content) == stored["bytes"]
    https = _new_anchor(assets=[_asset(uri="https://cdn.example.com/suzhou/crane.glb")])
    assert (await client.post("/v1/anchors", json=https, headers=admin)).status_code == 201


async def test_anchors_are_in_the_sync_feed_with_their_asset_hashes(client, auth) -> None:
    async def sync_all(since: str | None = None) -> tuple[list[dict], str]:
        changes: list[dict] = []
        while True:
            params = {"limit": 1000, **({"since": since} if since else {})}
            body = (await client.get("/v1/sync", params=params)).json()
            changes += body["changes"]
            since = body["cursor"]
            if not body["has_more"]:
                return changes, since

    first, cursor = await sync_all()
    anchors = {c["id"]: c for c in first if c["entity"] == "anchors"}
    assert set(anchors) == set(BY_ID)
    kunqu = anchors["nets-evening-kunqu"]["data"]
    assert [a["sha256"] for a in kunqu["assets"]] == [
        a["sha256"] for a in BY_ID["nets-evening-kunqu"]["assets"]
    ]
    assert kunqu["caption"] == BY_ID["nets-evening-kunqu"]["caption"]
    assert kunqu["narration"]["sha256"] == BY_ID["nets-evening-kunqu"]["narration"]["sha256"]

    admin = await auth("admin")
    assert (await client.delete("/v1/anchors/nets-koi-pool", headers=admin)).status_code == 204
    patched = await client.patch("/v1/anchors/nets-moon-lanterns", json={"scale": 2.5}, headers=admin)
    assert patched.status_code == 200
    delta, _ = await sync_all(cursor)
    ops = {(c["entity"], c["id"]): c for c in delta}
    assert set(ops) == {("anchors", "nets-koi-pool"), ("anchors", "nets-moon-lanterns")}
    assert ops[("anchors", "nets-koi-pool")]["op"] == "delete"
    assert ops[("anchors", "nets-moon-lanterns")]["data"]["scale"] == 2.5


async def test_route_bundles_include_the_anchors_of_their_stops(client) -> None:
    response = await client.get("/v1/routes/nets-evening-garden/bundle")
    assert response.status_code == 200, response.text
    bundle = response.json()
    stops = {
        s["poi_id"] for s in json.loads((DEFAULT_FIXTURES / "routes.json").read_text())["routes"][1]["stops"]
    }
    expected = sorted(a["id"] for a in FIXTURE if a["poi_id"] in stops)
    assert expected and sorted(a["id"] for a in bundle["anchors"]) == expected
    files = {f["sha256"]: f for f in bundle["files"]}
    for anchor in bundle["anchors"]:
        for asset in anchor["assets"] + [
            m["marker"] for m in anchor["localization"] if m["method"] == "image"
        ]:
            assert files[asset["sha256"]]["bytes"] == asset["bytes"]
            assert files[asset["sha256"]]["url"] == f"/media/{asset['sha256']}"


@pytest.mark.parametrize(
    "route_stop,status,field",
    [
        ({"route_id": "nets-evening-garden", "stop_index": 1}, 201, None),
        ({"route_id": "nets-evening-garden", "stop_index": 0}, 422, "route_stop.stop_index"),  # Shiquan St
        ({"route_id": "nets-evening-garden", "stop_index": 9}, 422, "route_stop.stop_index"),
        ({"route_id": "no-such-route", "stop_index": 0}, 422, "route_stop.route_id"),
    ],
)
async def test_route_stop_links_are_checked(client, auth, route_stop: dict, status: int, field) -> None:
    response = await client.post(
        "/v1/anchors", json=_new_anchor(route_stop=route_stop), headers=await auth("admin")
    )
    assert response.status_code == status, response.text
    if field:
        assert response.json()["field"] == field
    else:
        assert response.json()["route_stop"] == route_stop
