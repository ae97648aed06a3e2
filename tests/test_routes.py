"""Night routes: the catalogue, GeoJSON, operator writes and their validation. Both backends."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json

import pytest

from tourapi.geo.crs import wgs84_to_gcj02
from tourapi.geo.geometry import haversine_m
from tourapi.settings import DEFAULT_FIXTURES

ROUTES = {r["id"]: r for r in json.loads((DEFAULT_FIXTURES / "routes.json").read_text())["routes"]}
PUBLISHED = sorted(rid for rid, r in ROUTES.items() if r["status"] == "published")
POIS = {
    f["properties"]["id"]: f for f in json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())["features"]
}


def test_fixture_routes_cover_the_brief() -> None:
    assert len(PUBLISHED) >= 5
    assert any("Jun-Aug" in r["schedule"] or "Apr-Oct" in r["schedule"] for r in ROUTES.values())
    assert any(leg["mode"] == "boat" for r in ROUTES.values() for leg in r["legs"])
    for route in ROUTES.values():
        assert all(s["poi_id"] in POIS for s in route["stops"])
        cover = DEFAULT_FIXTURES / "media" / route["cover"]["file"]
        assert cover.stat().st_size < 50_000


def _cover_sha(route_id: str) -> str:
    return hashlib.sha256(
        (DEFAULT_FIXTURES / "media" / ROUTES[route_id]["cover"]["file"]).read_bytes()
    ).hexdigest()


async def test_list_published_routes(client) -> None:
    response = await client.get("/v1/routes", params={"lang": "en"})
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("public, max-age=60")
    body = response.json()
    assert [r["id"] for r in body["routes"]] == PUBLISHED, "drafts are not public"
    nets = next(r for r in body["routes"] if r["id"] == "nets-evening-garden")
    assert nets["name"] == "Evening garden at the Master of the Nets"
    assert nets["poi_ids"] == [s["poi_id"] for s in ROUTES["nets-evening-garden"]["stops"]]
    sha = _cover_sha("nets-evening-garden")
    assert nets["cover"]["sha256"] == sha and nets["cover"]["url"] == f"/media/{sha}"
    assert nets["cover"]["type"] == "image/png"
    assert (
        nets["cover"]["bytes"]
        == (DEFAULT_FIXTURES / "media" / "cover-nets-evening-garden.png").stat().st_size
    )
    assert "start_windows" not in nets


@pytest.mark.parametrize(
    "day,expected",
    [
        # Saturday in July: every published route runs.
        ("2026-07-18", {r: None for r in PUBLISHED}),
        # Thursday in July: only the daily Apr-Oct routes.
        (
            "2026-07-16",
            {
                "nets-evening-garden": [("2026-07-16T19:15:00+08:00", "2026-07-16T20:15:00+08:00")],
                "panmen-grand-canal-cruise": [("2026-07-16T18:30:00+08:00", "2026-07-16T19:30:00+08:00")],
            },
        ),
        # Saturday in December: only the winter snack walk, with its shorter window.
        (
            "2026-12-05",
            {"late-night-snack-walk": [("2026-12-05T21:00:00+08:00", "2026-12-05T23:00:00+08:00")]},
        ),
    ],
)
async def test_list_by_night_with_start_windows(client, day: str, expected: dict) -> None:
    body = (await client.get("/v1/routes", params={"date": day})).json()
    assert body["night"] == day
    assert [r["id"] for r in body["routes"]] == sorted(expected)
    for item in body["routes"]:
        assert item["start_windows"], item["id"]
        if expected[item["id"]] is not None:
            assert [(w["start"], w["end"]) for w in item["start_windows"]] == expected[item["id"]]


async def test_route_feature(client) -> None:
    response = await client.get("/v1/routes/shantang-boat-tiger-hill", params={"lang": "zh-Hans"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    feature = response.json()
    fixture = ROUTES["shantang-boat-tiger-hill"]
    assert feature["type"] == "Feature" and feature["id"] == "shantang-boat-tiger-hill"
    assert feature["geometry"]["type"] == "MultiLineString"
    assert feature["geometry"]["coordinates"] == [leg["path"]["coordinates"] for leg in fixture["legs"]]
    props = feature["properties"]
    assert props["name"] == fixture["name"]["zh-Hans"] and props["lang"] == "zh-Hans"
    assert props["schedule"] == "Jun-Aug Fr,Sa 17:50-18:20" and props["timezone"] == "Asia/Shanghai"
    assert [s["poi_id"] for s in props["stops"]] == [s["poi_id"] for s in fixture["stops"]]
    for stop in props["stops"]:
        poi = POIS[stop["poi_id"]]
        assert stop["point"] == poi["geometry"]["coordinates"]
        assert stop["name"] == poi["properties"]["name"]["zh-Hans"]
    boats = [e for e in props["events"] if e["kind"] == "boat"]
    assert (
        boats and boats[0]["stop"] == 3 and boats[0]["times"] == ["18:00", "18:30", "19:00", "19:30", "20:00"]
    )
    kunqu = next(e for e in props["events"] if e["kind"] == "performance")
    assert kunqu["times"] == ["18:45", "19:45"] and kunqu["poi_id"] == "shantang-kunqu-hall"
    assert [leg["mode"] for leg in props["legs"]] == ["walk", "walk", "walk", "boat"]
    boat = props["legs"][3]
    coords = fixture["legs"][3]["path"]["coordinates"]
    length = sum(haversine_m(*a, *b) for a, b in itertools.pairwise(coords))
    assert boat["distance_m"] == pytest.approx(length, abs=0.05) and boat["duration_minutes"] == 40


async def test_leg_without_path_is_a_straight_line_and_crs_converts(client) -> None:
    feature = (await client.get("/v1/routes/late-night-snack-walk")).json()
    shuttle = feature["geometry"]["coordinates"][1]
    assert shuttle == [
        POIS["fenghuang-street"]["geometry"]["coordinates"],
        POIS["shilu-food-street"]["geometry"]["coordinates"],
    ]
    assert feature["properties"]["legs"][1]["distance_source"] == "great_circle"
    gcj = (await client.get("/v1/routes/late-night-snack-walk", params={"crs": "gcj02"})).json()
    lon, lat = wgs84_to_gcj02(*POIS["shiquan-street"]["geometry"]["coordinates"])
    assert gcj["properties"]["stops"][0]["point"] == pytest.approx([lon, lat], abs=1e-7)


async def test_unknown_and_draft_routes_are_not_found(client, auth) -> None:
    assert (await client.get("/v1/routes/no-such-route")).status_code == 404
    assert (await client.get("/v1/routes/canglang-floating-life")).status_code == 404
    assert (await client.get("/v1/routes/canglang-floating-life/bundle")).status_code == 404
    operator = await auth("operator")
    draft = await client.get("/v1/manage/routes/canglang-floating-life", headers=operator)
    assert draft.status_code == 200 and draft.json()["properties"]["status"] == "draft"
    assert draft.headers["cache-control"] == "private, no-store"
    everything = (await client.get("/v1/manage/routes", headers=operator)).json()
    assert [r["id"] for r in everything["routes"]] == sorted(ROUTES)
    assert (await client.get("/v1/manage/routes")).status_code == 401
    staff = await auth("staff-nets")
    assert (await client.get("/v1/manage/routes", headers=staff)).status_code == 403


def _new_route(**changes) -> dict:
    body = {
        "id": "test-evening",
        "status": "published",
        "name": {"zh-Hans": "测试夜游", "en": "Test evening"},
        "summary": {"zh-Hans": "从平江路到琵琶语。", "en": "Pingjiang Road to the teahouse."},
        "theme": "performances",
        "schedule": "Mo-Su 19:00-20:00",
        "stops": [
            {"poi_id": "pingjiang-road", "dwell_minutes": 20},
            {
                "poi_id": "pipayu-pingtan-teahouse",
                "dwell_minutes": 45,
                "events": [{"name": {"zh-Hans": "评弹", "en": "Pingtan"}, "times": ["20:00", "21:00"]}],
            },
        ],
        "legs": [
            {
                "mode": "walk",
                "path": {
                    "type": "LineString",
                    "coordinates": [[120.63056, 31.31615], [120.63000, 31.31760], [120.62920, 31.31893]],
                },
            }
        ],
    }
    body.update(changes)
    return body


async def test_operator_creates_updates_and_soft_deletes(client, auth) -> None:
    operator = await auth("operator")
    created = await client.post("/v1/routes", json=_new_route(), headers=operator)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/routes/test-evening"
    assert created.headers["cache-control"] == "private, no-store"
    listed = (await client.get("/v1/routes")).json()
    assert "test-evening" in [r["id"] for r in listed["routes"]]
    again = await client.post("/v1/routes", json=_new_route(), headers=operator)
    assert again.status_code == 409 and again.json()["field"] == "id"

    patched = await client.patch(
        "/v1/routes/test-evening", json={"summary": {"zh-Hans": "改", "en": "Changed"}}, headers=operator
    )
    assert patched.status_code == 200, patched.text
    props = patched.json()["properties"]
    assert props["summary"] == "Changed"
    assert props["stops"][1]["events"][0]["times"] == ["20:00", "21:00"], "untouched fields stay"
    assert patched.json()["geometry"] == created.json()["geometry"]

    body = _new_route()
    del body["id"]
    body["stops"][0]["dwell_minutes"] = 30
    replaced = await client.put("/v1/routes/test-evening", json=body, headers=operator)
    assert replaced.status_code == 200 and replaced.json()["properties"]["stops"][0]["dwell_minutes"] == 30

    drafted = await client.patch("/v1/routes/test-evening", json={"status": "draft"}, headers=operator)
    assert drafted.status_code == 200
    assert (await client.get("/v1/routes/test-evening")).status_code == 404
    assert (await client.get("/v1/manage/routes/test-evening", headers=operator)).status_code == 200

    deleted = await client.delete("/v1/routes/test-evening", headers=operator)
    assert deleted.status_code == 204
    assert (await client.get("/v1/manage/routes/test-evening", headers=operator)).status_code == 404
    # A deleted id can be created again.
    assert (await client.post("/v1/routes", json=_new_route(), headers=operator)).status_code == 201


async def test_writes_need_an_operator(client, auth) -> None:
    assert (await client.post("/v1/routes", json=_new_route())).status_code == 401
    staff = await auth("staff-nets")
    assert (await client.post("/v1/routes", json=_new_route(), headers=staff)).status_code == 403
    assert (await client.delete("/v1/routes/nets-evening-garden", headers=staff)).status_code == 403
    admin = await auth("admin")
    assert (await client.post("/v1/routes", json=_new_route(), headers=admin)).status_code == 201


async def test_patch_paths_in_gcj02(client, auth) -> None:
    operator = await auth("operator")
    assert (await client.post("/v1/routes", json=_new_route(), headers=operator)).status_code == 201
    wgs = _new_route()["legs"][0]["path"]["coordinates"]
    gcj = [list(wgs84_to_gcj02(*c)) for c in wgs]
    legs = [{"mode": "walk", "path": {"type": "LineString", "coordinates": gcj}}]
    response = await client.patch(
        "/v1/routes/test-evening", json={"legs": legs, "crs": "gcj02"}, headers=operator
    )
    assert response.status_code == 200, response.text
    stored = response.json()["geometry"]["coordinates"][0]
    assert all(haversine_m(*a, *b) < 0.05 for a, b in zip(stored, wgs))
    # A later patch without legs must not re-read the stored WGS-84 paths as GCJ-02.
    again = await client.patch(
        "/v1/routes/test-evening", json={"difficulty": "moderate", "crs": "gcj02"}, headers=operator
    )
    assert again.json()["geometry"]["coordinates"][0] == stored


def _with(path: str, value) -> dict:
    """A new route body with the value at a dotted path (list indexes as numbers) replaced."""
    body = copy.deepcopy(_new_route())
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    target = body
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return body


FAR_PATH = {"type": "LineString", "coordinates": [[120.63056, 31.31615], [120.6200, 31.3300]]}
BOAT_STOPS = [
    {
        "poi_id": "pingjiang-road-boat-pier",
        "dwell_minutes": 5,
        "events": [{"name": {"zh-Hans": "船", "en": "Boat"}, "kind": "boat", "times": ["19:30"]}],
    },
    {"poi_id": "pingjiang-road", "dwell_minutes": 20},
]


@pytest.mark.parametrize(
    "body,field,slug",
    [
        (_with("stops.1.poi_id", "atlantis"), "stops[1].poi_id", "invalid-input"),
        (_with("stops.1.poi_id", "pingjiang-road"), "stops[1].poi_id", "invalid-input"),  # repeats stop 0
        (_with("legs.0.path", FAR_PATH), "legs[0].path", "invalid-input"),
        (
            _with("legs.0.path", {"type": "LineString", "coordinates": [[120.63056, 31.31615]]}),
            "legs[0].path",
            "invalid-geometry",
        ),
        (
            _with("legs.0.path", {"type": "Point", "coordinates": [120.63, 31.31]}),
            "legs[0].path",
            "invalid-geometry",
        ),
        # The teahouse closes at 22:30: a 22:45 set is outside its opening hours.
        (_with("stops.1.events.0.times", ["20:00", "22:45"]), "stops[1].events[0]", "invalid-input"),
        (
            _with("stops.1.events.0", {"name": {"zh-Hans": "x", "en": "x"}, "start": "20:00"}),
            "stops[1].events[0]",
            "invalid-input",
        ),
        (_with("stops.1.events.0.kind", "boat"), "stops[1].events[0].kind", "invalid-input"),
        (
            _with("stops.1.events.0.times", ["20:00", "8pm"]),
            "body.stops[1].events[0].times[1]",
            "invalid-input",
        ),
        (_with("stops.0.dwell_minutes", -5), "body.stops[0].dwell_minutes", "invalid-input"),
        (_with("stops.0.dwell_minutes", 100_000), "body.stops[0].dwell_minutes", "invalid-input"),
        (_with("legs.0.duration_minutes", 0), "body.legs[0].duration_minutes", "invalid-input"),
        (_with("legs", []), "legs", "invalid-input"),
        (_with("schedule", "Mo-Su 25:00-26:00"), "schedule", "invalid-opening-hours"),
        (_with("name", {"en": "English only"}), "name.zh-Hans", "invalid-input"),
        (_with("cover", {"sha256": "0" * 64}), "cover.sha256", "invalid-input"),
        (_new_route(stops=BOAT_STOPS, legs=[{"mode": "boat"}]), "legs[0].duration_minutes", "invalid-input"),
        (
            _new_route(
                stops=[dict(BOAT_STOPS[0], events=[]), BOAT_STOPS[1]],
                legs=[{"mode": "boat", "duration_minutes": 20}],
            ),
            "stops[0].events",
            "invalid-input",
        ),
        # Tiger Hill is about 6 km away by water: one minute is absurd.
        (
            _new_route(
                stops=[BOAT_STOPS[0], {"poi_id": "tiger-hill", "dwell_minutes": 20}],
                legs=[{"mode": "boat", "duration_minutes": 1}],
            ),
            "legs[0].duration_minutes",
            "invalid-input",
        ),
    ],
)
async def test_invalid_writes_name_the_stop_or_leg(client, auth, body: dict, field: str, slug: str) -> None:
    response = await client.post("/v1/routes", json=body, headers=await auth("operator"))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field, problem
    assert problem["type"] == f"urn:tourapi:problem:{slug}"
    operator = await auth("operator")
    assert (await client.get("/v1/manage/routes/test-evening", headers=operator)).status_code == 404, (
        "nothing written"
    )


async def test_a_deleted_poi_cannot_be_used(client, auth) -> None:
    admin = await auth("admin")
    assert (await client.delete("/v1/pois/pipayu-pingtan-teahouse", headers=admin)).status_code == 204
    response = await client.post("/v1/routes", json=_new_route(), headers=await auth("operator"))
    assert response.status_code == 422 and response.json()["field"] == "stops[1].poi_id"
    assert "deleted" in response.json()["detail"]


async def test_event_must_fit_the_poi_hours_on_every_night_the_route_runs(client, auth) -> None:
    """The Kunqu Opera Museum opens in the evening on Saturdays only: fine for a Saturday route, not daily."""
    stops = [
        {
            "poi_id": "kunqu-opera-museum",
            "dwell_minutes": 30,
            "events": [
                {"name": {"zh-Hans": "昆曲", "en": "Kunqu"}, "times": ["19:30"], "duration_minutes": 20}
            ],
        },
        {"poi_id": "pingtan-museum", "dwell_minutes": 20},
    ]
    legs = [{"mode": "walk"}]
    operator = await auth("operator")
    saturday = _new_route(schedule="Sa 19:00-19:30", stops=stops, legs=legs)
    assert (await client.post("/v1/routes", json=saturday, headers=operator)).status_code == 201
    daily = _new_route(id="test-daily", schedule="Mo-Su 19:00-19:30", stops=stops, legs=legs)
    response = await client.post("/v1/routes", json=daily, headers=operator)
    assert response.status_code == 422 and response.json()["field"] == "stops[0].events[0]"
    # A show running past closing time (21:00) is refused too.
    late = copy.deepcopy(saturday) | {"id": "test-late"}
    late["stops"][0]["events"][0].update(times=["20:50"], duration_minutes=20)
    response = await client.post("/v1/routes", json=late, headers=operator)
    assert response.status_code == 422 and response.json()["field"] == "stops[0].events[0]"


async def test_cover_from_the_media_store(client, auth) -> None:
    sha = _cover_sha("nets-evening-garden")
    body = _new_route(cover={"sha256": sha, "alt": {"en": "A garden"}})
    response = await client.post("/v1/routes", json=body, headers=await auth("operator"))
    assert response.status_code == 201, response.text
    cover = response.json()["properties"]["cover"]
    assert cover == {
        "url": f"/media/{sha}",
        "sha256": sha,
        "bytes": (DEFAULT_FIXTURES / "media" / "cover-nets-evening-garden.png").stat().st_size,
        "type": "image/png",
        "alt": "A garden",
    }


async def test_migration_matches_the_models(settings, backend) -> None:
    """PostgreSQL gets its schema from Alembic: the routes and media tables must match the models."""
    if backend != "postgis":
        pytest.skip("SQLite's schema comes from the models themselves")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from geoalchemy2 import alembic_helpers
    from sqlalchemy.ext.asyncio import create_async_engine

    from tourapi.db.base import Base

    mine = {"routes", "route_stops", "route_legs", "media_files"}
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(
                        c, opts={"compare_type": True, "include_object": alembic_helpers.include_object}
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()

    def table_of(diff) -> str | None:
        item = diff[0] if isinstance(diff, list) else diff
        for part in item[1:]:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None):
                return table.name
            if isinstance(part, str) and part in mine:
                return part
            if name in mine:
                return name
        return None

    assert [d for d in diffs if table_of(d) in mine] == []
