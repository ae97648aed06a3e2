"""POI catalogue: queries, writes, validation, caching. Runs on both backends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tourapi.geo.crs import wgs84_to_bd09, wgs84_to_gcj02
from tourapi.geo.geometry import haversine_m
from tourapi.settings import DEFAULT_FIXTURES

FIXTURE = json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())
FIXTURE_IDS = sorted(f["properties"]["id"] for f in FIXTURE["features"])
HUMBLE = (120.624907, 31.326144)  # Humble Administrator's Garden, WGS-84
PINGJIANG = (120.6300, 31.3150)


def _feature(poi_id: str) -> dict:
    return next(f for f in FIXTURE["features"] if f["properties"]["id"] == poi_id)


async def test_list_returns_every_fixture_poi_as_geojson(client) -> None:
    response = await client.get("/v1/pois", params={"limit": 500})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert sorted(f["id"] for f in body["features"]) == FIXTURE_IDS
    garden = next(f for f in body["features"] if f["id"] == "humble-administrators-garden")
    assert garden["geometry"] == {"type": "Point", "coordinates": list(HUMBLE)}
    assert garden["properties"]["geofence"]["type"] == "Polygon"


async def test_nearby_sorted_nearest_first_with_distances(client) -> None:
    lon, lat = PINGJIANG
    response = await client.get("/v1/pois", params={"lon": lon, "lat": lat, "radius": 600})
    features = response.json()["features"]
    assert features, "Pingjiang Road has venues within 600 m"
    distances = [f["properties"]["distance_m"] for f in features]
    assert distances == sorted(distances)
    assert all(d <= 600 for d in distances)
    expected = sorted(
        (haversine_m(lon, lat, *f["geometry"]["coordinates"]), f["properties"]["id"])
        for f in FIXTURE["features"]
    )
    expected_ids = [pid for d, pid in expected if d <= 600]
    assert [f["id"] for f in features] == expected_ids
    for feature, (d, _) in zip(features, expected):
        assert math.isclose(feature["properties"]["distance_m"], d, abs_tol=0.2)


async def test_bbox_filter_keeps_points_inside(client) -> None:
    bbox = (120.62, 31.32, 120.63, 31.33)
    response = await client.get("/v1/pois", params={"bbox": ",".join(map(str, bbox))})
    ids = {f["id"] for f in response.json()["features"]}
    expected = {
        f["properties"]["id"]
        for f in FIXTURE["features"]
        if bbox[0] <= f["geometry"]["coordinates"][0] <= bbox[2]
        and bbox[1] <= f["geometry"]["coordinates"][1] <= bbox[3]
    }
    assert ids == expected and "humble-administrators-garden" in ids


async def test_category_filter(client) -> None:
    response = await client.get("/v1/pois", params={"category": "garden"})
    ids = {f["id"] for f in response.json()["features"]}
    assert ids == {
        f["properties"]["id"] for f in FIXTURE["features"] if f["properties"]["category"] == "garden"
    }


async def test_open_at_filters_and_reports_next_change(client) -> None:
    # A Saturday night in July: the Master of the Nets evening garden is open, museums mostly closed.
    response = await client.get("/v1/pois", params={"open_at": "2026-07-18T20:00:00+08:00", "limit": 500})
    features = response.json()["features"]
    ids = {f["id"] for f in features}
    assert "master-of-the-nets-garden" in ids
    assert all(f["properties"]["open_now"] is True for f in features)
    assert all(
        f["properties"]["next_change"].endswith("+08:00") for f in features if f["properties"]["next_change"]
    )
    closed_at_dawn = await client.get(
        "/v1/pois", params={"open_at": "2026-07-19T04:30:00+08:00", "limit": 500}
    )
    assert len(closed_at_dawn.json()["features"]) < len(features)


async def test_language_fallback_chain(client) -> None:
    en = await client.get("/v1/pois/lion-grove-garden", params={"lang": "en"})
    assert en.json()["properties"]["name"] == "Lion Grove Garden"
    zh = await client.get(
        "/v1/pois/lion-grove-garden", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    )
    assert zh.json()["properties"]["name"] == "狮子林"
    assert zh.json()["properties"]["lang"] == "zh-Hans"
    # Japanese is supported but the fixture has no Japanese text: falls back to English.
    ja = await client.get("/v1/pois/lion-grove-garden", params={"lang": "ja"})
    assert ja.json()["properties"]["lang"] == "en"
    unknown = await client.get("/v1/pois/lion-grove-garden", params={"lang": "xx-klingon"})
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "lang"


@pytest.mark.parametrize("crs,forward", [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
async def test_crs_in_and_out(client, crs: str, forward) -> None:
    lon, lat = forward(*HUMBLE)
    response = await client.get("/v1/geofences/containing", params={"lon": lon, "lat": lat, "crs": crs})
    assert "humble-administrators-garden" in response.json()["poi_ids"]
    # Without crs the same numbers are read as WGS-84, several hundred metres away.
    wrong = await client.get("/v1/geofences/containing", params={"lon": lon, "lat": lat})
    assert "humble-administrators-garden" not in wrong.json()["poi_ids"]
    feature = (await client.get("/v1/pois/humble-administrators-garden", params={"crs": crs})).json()
    out_lon, out_lat = feature["geometry"]["coordinates"]
    assert haversine_m(out_lon, out_lat, lon, lat) < 0.05


async def test_paging_walks_all_items_once(client) -> None:
    seen: list[str] = []
    url, params = "/v1/pois", {"limit": 7}
    while True:
        body = (await client.get(url, params=params)).json()
        seen += [f["id"] for f in body["features"]]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            break
        url, params = nxt[0].replace("http://testserver.local", ""), None
    assert seen == FIXTURE_IDS


async def test_etag_and_304(client) -> None:
    first = await client.get("/v1/pois/lion-grove-garden")
    etag = first.headers["etag"]
    second = await client.get("/v1/pois/lion-grove-garden", headers={"If-None-Match": etag})
    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["etag"] == etag


async def test_gzip_compression(client) -> None:
    response = await client.get("/v1/pois", params={"limit": 500}, headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("content-encoding") == "gzip"
    assert "etag" in response.headers
    # httpx decodes transparently; the body is the full collection.
    assert len(response.json()["features"]) == len(FIXTURE_IDS)


@pytest.mark.parametrize(
    "params,field",
    [
        ({"lon": "nan", "lat": "31.3", "radius": "100"}, "lon"),
        ({"lon": "120.6", "lat": "inf", "radius": "100"}, "lon"),
        ({"lon": "31.3", "lat": "120.6", "radius": "100"}, "lon"),  # swapped
        ({"lon": "200", "lat": "31.3", "radius": "100"}, "lon"),
        ({"lon": "120.6", "lat": "31.3", "radius": "0"}, "radius"),
        ({"lon": "120.6", "lat": "31.3", "radius": "900000"}, "radius"),
        ({"lon": "120.6", "lat": "31.3"}, "radius"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "120.7,31.3,120.6,31.4"}, "bbox"),
        ({"bbox": "100,20,130,40"}, "bbox"),
        ({"category": "casino"}, "category"),
        ({"open_at": "tonight"}, "open_at"),
        ({"limit": "0"}, "query.limit"),
        ({"crs": "epsg3857"}, "query.crs"),
    ],
)
async def test_bad_query_parameters_are_named(client, params: dict, field: str) -> None:
    response = await client.get("/v1/pois", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["field"] == field
    assert body["status"] == 422 and body["type"].startswith("urn:tourapi:problem:")


def _new_poi(**changes) -> dict:
    base = {
        "id": "test-teahouse",
        "category": "performance_venue",
        "name": {"zh-Hans": "测试茶馆", "en": "Test Teahouse"},
        "location": {"type": "Point", "coordinates": [120.6295, 31.3170]},
        "geofence": {
            "type": "Polygon",
            "coordinates": [
                [
                    [120.6293, 31.3168],
                    [120.6297, 31.3168],
                    [120.6297, 31.3172],
                    [120.6293, 31.3172],
                    [120.6293, 31.3168],
                ]
            ],
        },
        "opening_hours": "Mo-Su 19:00-01:00",
        "capacity": 80,
    }
    base.update(changes)
    return base


async def test_admin_creates_updates_and_soft_deletes(client, auth) -> None:
    admin = await auth("admin")
    created = await client.post("/v1/pois", json=_new_poi(), headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/pois/test-teahouse"
    inside = await client.get("/v1/geofences/containing", params={"lon": 120.6295, "lat": 31.3170})
    assert "test-teahouse" in inside.json()["poi_ids"], "the index is refreshed after the write"

    patched = await client.patch("/v1/pois/test-teahouse", json={"capacity": 120}, headers=admin)
    assert patched.status_code == 200 and patched.json()["properties"]["capacity"] == 120
    assert patched.json()["properties"]["geofence"] == created.json()["properties"]["geofence"]

    before = (await client.get("/v1/pois/test-teahouse")).json()["properties"]["updated_at"]
    deleted = await client.delete("/v1/pois/test-teahouse", headers=admin)
    assert deleted.status_code == 204
    assert (await client.get("/v1/pois/test-teahouse")).status_code == 404
    gone = await client.get("/v1/geofences/containing", params={"lon": 120.6295, "lat": 31.3170})
    assert "test-teahouse" not in gone.json()["poi_ids"]

    changes = await client.get("/v1/pois", params={"updated_since": before})
    tombstones = [f for f in changes.json()["features"] if f["id"] == "test-teahouse"]
    assert tombstones and tombstones[0]["properties"]["deleted"] is True and tombstones[0]["geometry"] is None


async def test_create_in_gcj02_stores_wgs84(client, auth) -> None:
    admin = await auth("admin")
    body = _new_poi()
    gcj = [list(wgs84_to_gcj02(*pt)) for pt in body["geofence"]["coordinates"][0]]
    body.update(
        crs="gcj02",
        location={"type": "Point", "coordinates": list(wgs84_to_gcj02(120.6295, 31.3170))},
        geofence={"type": "Polygon", "coordinates": [gcj]},
    )
    response = await client.post("/v1/pois", json=body, headers=admin)
    assert response.status_code == 201, response.text
    stored = (await client.get("/v1/pois/test-teahouse")).json()
    lon, lat = stored["geometry"]["coordinates"]
    assert haversine_m(lon, lat, 120.6295, 31.3170) < 0.05


@pytest.mark.parametrize(
    "changes,field,slug",
    [
        (
            {
                "geofence": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [120.6293, 31.3168],
                            [120.6297, 31.3172],
                            [120.6297, 31.3168],
                            [120.6293, 31.3172],
                            [120.6293, 31.3168],
                        ]
                    ],
                }
            },
            "geofence",
            "invalid-geometry",
        ),  # bow-tie: self-intersection
        ({"geofence": {"type": "Point", "coordinates": [120.6, 31.3]}}, "geofence", "invalid-geometry"),
        ({"location": {"type": "Point", "coordinates": [31.317, 120.6295]}}, "location", "invalid-geometry"),
        ({"geofence": {"type": "Polygon", "coordinates": []}}, "geofence", "invalid-geometry"),
        (
            {"location": {"type": "Point", "coordinates": [121.5, 31.2]}},
            "location",
            "invalid-input",
        ),  # far away
        ({"opening_hours": "Mo-Fr 25:00-26:00"}, "opening_hours", "invalid-opening-hours"),
        ({"name": {"zh-Hans": "茶馆", "en": "Tea", "tlh": "Qe'"}}, "name.tlh", "invalid-input"),
        ({"name": {"en": "Only English"}}, "name.zh-Hans", "invalid-input"),
        ({"capacity": -5}, "body.capacity", "invalid-input"),
        ({"category": "casino"}, "body.category", "invalid-input"),
        (
            {
                "media": [
                    {
                        "url": "http://insecure.example/x.jpg",
                        "type": "image/jpeg",
                        "sha256": "a" * 64,
                        "bytes": 10,
                    }
                ]
            },
            "media[0].url",
            "invalid-input",
        ),
    ],
)
async def test_invalid_writes_get_named_422(client, auth, changes: dict, field: str, slug: str) -> None:
    response = await client.post("/v1/pois", json=_new_poi(**changes), headers=await auth("admin"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field, body
    assert body["type"] == f"urn:tourapi:problem:{slug}"
    assert (await client.get("/v1/pois/test-teahouse")).status_code == 404, "nothing half-written"


async def test_malformed_json_and_nan_literals(client, auth) -> None:
    headers = {**await auth("admin"), "Content-Type": "application/json"}
    broken = await client.post("/v1/pois", content=b'{"id": "x",', headers=headers)
    assert broken.status_code == 400 and broken.json()["field"] == "body"
    nan = json.dumps(_new_poi()).replace("120.6295, 31.317]", "NaN, 31.317]")
    assert "NaN" in nan
    response = await client.post("/v1/pois", content=nan.encode(), headers=headers)
    assert response.status_code == 400


async def test_body_size_limit(client, auth) -> None:
    huge = _new_poi(description={"en": "x" * 2_000_000})
    response = await client.post("/v1/pois", json=huge, headers=await auth("admin"))
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_duplicate_id_conflicts(client, auth) -> None:
    response = await client.post(
        "/v1/pois", json=_new_poi(id="lion-grove-garden"), headers=await auth("admin")
    )
    assert response.status_code == 409 and response.json()["field"] == "id"


def test_fixture_file_is_the_one_documented() -> None:
    assert Path(DEFAULT_FIXTURES, "README.md").exists()
    assert len(FIXTURE_IDS) >= 24


async def test_deleting_a_poi_deletes_its_anchors(client, auth) -> None:
    before = (await client.get("/v1/pois/lion-grove-garden/anchors")).json()
    anchors = before["anchors"] if isinstance(before, dict) else before
    assert anchors, "the fixtures place anchors in the Lion Grove"
    cursor = (await client.get("/v1/sync")).json()
    while cursor.get("has_more"):
        cursor = (await client.get("/v1/sync", params={"since": cursor["cursor"]})).json()
    assert (await client.delete("/v1/pois/lion-grove-garden", headers=await auth("admin"))).status_code == 204
    changes = (await client.get("/v1/sync", params={"since": cursor["cursor"]})).json()["changes"]
    deleted = {(c["entity"], c["id"]) for c in changes if c["op"] == "delete"}
    assert ("pois", "lion-grove-garden") in deleted
    assert {("anchors", a["id"]) for a in anchors} <= deleted


async def test_patch_without_coordinates_ignores_their_crs(client, auth) -> None:
    """Found by the fuzzer: a patch naming a crs but no geometry must keep the stored WGS-84 geometry."""
    admin = await auth("admin")
    before = (await client.get("/v1/pois/fenghuang-street")).json()
    patched = await client.patch(
        "/v1/pois/fenghuang-street", json={"capacity": 991, "crs": "gcj02"}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    after = (await client.get("/v1/pois/fenghuang-street")).json()
    assert after["geometry"] == before["geometry"]
    assert after["properties"]["capacity"] == 991


async def test_patch_with_malformed_coordinates_in_another_crs_is_a_422(client, auth) -> None:
    """Found by the fuzzer: coordinates that are not numbers, in gcj02, were a 500."""
    admin = await auth("admin")
    before = (await client.get("/v1/pois/fenghuang-street")).json()
    bad = {"type": "Point", "coordinates": [[[-2.5e16, ""]], [-2.5e16, "", ""]]}
    patched = await client.patch(
        "/v1/pois/fenghuang-street", json={"crs": "gcj02", "location": bad, "capacity": 3538}, headers=admin
    )
    assert patched.status_code == 422, patched.text
    assert patched.headers["content-type"].startswith("application/problem+json")
    assert "geofence" in patched.text  # the stored WGS-84 geofence cannot be read as gcj02
    both = {"crs": "gcj02", "location": bad, "geofence": bad}
    patched = await client.patch("/v1/pois/fenghuang-street", json=both, headers=admin)
    assert patched.status_code == 422, patched.text
    after = (await client.get("/v1/pois/fenghuang-street")).json()
    assert (
        after["geometry"] == before["geometry"]
        and after["properties"]["capacity"] == before["properties"]["capacity"]
    )
