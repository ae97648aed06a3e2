"""GET /v1/sync: one delta feed over POIs, routes (and any registered source), tombstones, purge."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SECRET

from tourapi.db.models import Poi
from tourapi.domain.sync.registry import register_sync_source, sync_sources
from tourapi.domain.sync.services import purge_tombstones
from tourapi.settings import DEFAULT_FIXTURES

POI_IDS = sorted(
    f["properties"]["id"] for f in json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())["features"]
)
ROUTES = json.loads((DEFAULT_FIXTURES / "routes.json").read_text())["routes"]
PUBLISHED = sorted(r["id"] for r in ROUTES if r["status"] == "published")
MINE = ("pois", "routes")


async def sync_all(client, since: str | None = None, limit: int = 200) -> tuple[list[dict], str]:
    """Follow has_more to the end; returns every change and the final cursor."""
    changes: list[dict] = []
    while True:
        params: dict = {"limit": limit}
        if since is not None:
            params["since"] = since
        response = await client.get("/v1/sync", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        changes += body["changes"]
        since = body["cursor"]
        if not body["has_more"]:
            return changes, since


def ours(changes: list[dict]) -> list[dict]:
    return [c for c in changes if c["entity"] in MINE]


def _new_poi() -> dict:
    ring = [
        [120.6293, 31.3168],
        [120.6297, 31.3168],
        [120.6297, 31.3172],
        [120.6293, 31.3172],
        [120.6293, 31.3168],
    ]
    return {
        "id": "test-teahouse",
        "category": "performance_venue",
        "name": {"zh-Hans": "测试茶馆", "en": "Test Teahouse"},
        "location": {"type": "Point", "coordinates": [120.6295, 31.3170]},
        "geofence": {"type": "Polygon", "coordinates": [ring]},
        "opening_hours": "Mo-Su 19:00-01:00",
        "capacity": 80,
    }


async def test_first_sync_has_every_live_entity_once(client) -> None:
    changes, cursor = await sync_all(client)
    mine = ours(changes)
    assert sorted(c["id"] for c in mine if c["entity"] == "pois") == POI_IDS
    assert sorted(c["id"] for c in mine if c["entity"] == "routes") == PUBLISHED, "drafts are not synced"
    assert all(c["op"] == "upsert" for c in changes)
    keys = [(c["entity"], c["id"]) for c in changes]
    assert len(keys) == len(set(keys))
    seqs = [c["seq"] for c in changes]
    assert seqs == sorted(seqs)
    route = next(c for c in mine if c["id"] == "nets-evening-garden")["data"]
    assert route["name"]["en"] == "Evening garden at the Master of the Nets"
    assert [s["poi_id"] for s in route["stops"]] == [
        "shiquan-street",
        "master-of-the-nets-garden",
        "fenghuang-street",
    ]
    poi = next(c for c in mine if c["id"] == "lion-grove-garden")["data"]
    assert poi["properties"]["geofence"]["type"] == "Polygon" and "open_now" not in poi["properties"]
    again = (await client.get("/v1/sync", params={"since": cursor})).json()
    assert again["changes"] == [] and again["has_more"] is False and again["cursor"] == cursor


async def test_paging_never_repeats_and_ends(client) -> None:
    everything, final = await sync_all(client)
    paged, paged_final = await sync_all(client, limit=7)
    assert [(c["entity"], c["id"]) for c in paged] == [(c["entity"], c["id"]) for c in everything]
    assert paged_final == final
    first = (await client.get("/v1/sync", params={"limit": 7})).json()
    assert first["has_more"] is True and len(first["changes"]) == 7


async def test_deletions_during_a_paged_first_sync_still_arrive(client, auth) -> None:
    """A first sync leaves out old tombstones, but not deletions of things it already sent."""
    first = (await client.get("/v1/sync", params={"limit": 5})).json()
    sent = [c["id"] for c in first["changes"] if c["entity"] == "pois"]
    assert first["has_more"] and sent
    assert (await client.delete(f"/v1/pois/{sent[0]}", headers=await auth("admin"))).status_code == 204
    rest, _ = await sync_all(client, first["cursor"])
    assert [(c["id"], c["op"]) for c in rest if c["id"] == sent[0]] == [(sent[0], "delete")]
    assert "canglang-floating-life" not in [c["id"] for c in rest], "a draft from before is never sent"


async def test_delta_has_exactly_what_changed_deletions_included(client, auth) -> None:
    _, cursor = await sync_all(client)
    admin, operator = await auth("admin"), await auth("operator")
    # Two edits of one POI, a new POI, a deleted route, a route back to draft, a route edited twice.
    for capacity in (2000, 2100):
        r = await client.patch("/v1/pois/lion-grove-garden", json={"capacity": capacity}, headers=admin)
        assert r.status_code == 200
    assert (await client.post("/v1/pois", json=_new_poi(), headers=admin)).status_code == 201
    assert (await client.delete("/v1/routes/panmen-grand-canal-cruise", headers=operator)).status_code == 204
    r = await client.patch("/v1/routes/summer-night-garden-boat", json={"status": "draft"}, headers=operator)
    assert r.status_code == 200
    for level in ("moderate", "demanding"):
        r = await client.patch("/v1/routes/nets-evening-garden", json={"difficulty": level}, headers=operator)
        assert r.status_code == 200

    changes, final = await sync_all(client, cursor)
    assert [(c["entity"], c["id"], c["op"]) for c in changes] == [
        ("pois", "lion-grove-garden", "upsert"),
        ("pois", "test-teahouse", "upsert"),
        ("routes", "panmen-grand-canal-cruise", "delete"),
        ("routes", "summer-night-garden-boat", "delete"),
        ("routes", "nets-evening-garden", "upsert"),
    ]
    by_id = {c["id"]: c for c in changes}
    assert by_id["lion-grove-garden"]["data"]["properties"]["capacity"] == 2100, "latest state only"
    assert by_id["nets-evening-garden"]["data"]["difficulty"] == "demanding"
    assert by_id["panmen-grand-canal-cruise"]["reason"] == "deleted"
    assert by_id["panmen-grand-canal-cruise"]["deleted_at"] is not None
    assert by_id["summer-night-garden-boat"]["reason"] == "withdrawn"
    assert "data" not in by_id["panmen-grand-canal-cruise"]
    # Nothing twice: from the final cursor there is nothing new.
    assert (await client.get("/v1/sync", params={"since": final})).json()["changes"] == []
    # A POI deletion is a tombstone too.
    assert (await client.delete("/v1/pois/test-teahouse", headers=admin)).status_code == 204
    later, _ = await sync_all(client, final)
    assert [(c["entity"], c["id"], c["op"]) for c in later] == [("pois", "test-teahouse", "delete")]


async def test_one_change_at_a_time_with_limit_one(client, auth) -> None:
    _, cursor = await sync_all(client)
    operator = await auth("operator")
    for route_id in ("nets-evening-garden", "late-night-snack-walk", "shantang-boat-tiger-hill"):
        r = await client.patch(f"/v1/routes/{route_id}", json={"tags": ["edited"]}, headers=operator)
        assert r.status_code == 200
    seen = []
    for _ in range(3):
        body = (await client.get("/v1/sync", params={"since": cursor, "limit": 1})).json()
        seen += [c["id"] for c in body["changes"]]
        cursor = body["cursor"]
    assert seen == ["nets-evening-garden", "late-night-snack-walk", "shantang-boat-tiger-hill"]
    assert body["has_more"] is False


@pytest.mark.parametrize("since", ["garbage", "12", "YzEuLTE"])
async def test_a_cursor_not_from_us_is_refused(client, since: str) -> None:
    response = await client.get("/v1/sync", params={"since": since})
    assert response.status_code == 422 and response.json()["field"] == "since"


async def _old_tombstones(client, auth) -> str:
    """Delete a route and a fresh POI (tombstones), and a POI a route still uses; returns the cursor before."""
    admin, operator = await auth("admin"), await auth("operator")
    assert (await client.post("/v1/pois", json=_new_poi(), headers=admin)).status_code == 201
    _, before = await sync_all(client)
    assert (await client.delete("/v1/pois/test-teahouse", headers=admin)).status_code == 204
    assert (await client.delete("/v1/routes/panmen-grand-canal-cruise", headers=operator)).status_code == 204
    assert (await client.delete("/v1/pois/shilu-food-street", headers=admin)).status_code == 204
    return before


async def test_purge_then_old_cursors_must_resync(client, auth, runtime) -> None:
    before = await _old_tombstones(client, auth)
    fresh = await purge_tombstones(runtime, 30)
    assert fresh.purged == {}, "nothing is 30 days old yet"
    report = await purge_tombstones(runtime, 1, now=datetime.now(UTC) + timedelta(days=2))
    assert report.purged.get("routes") == 1
    assert report.purged.get("pois") == 1, "only the unreferenced POI goes"
    assert report.kept.get("pois") == 1, "the snack walk still uses Shilu Food Street"
    gone = await client.get("/v1/sync", params={"since": before})
    assert gone.status_code == 410
    problem = gone.json()
    assert problem["type"] == "urn:tourapi:problem:resync-required" and problem["field"] == "since"
    assert problem["resync_required"] is True
    assert gone.headers["content-type"].startswith("application/problem+json")
    # Starting over works, and the purge cursor itself is accepted.
    fresh_changes, cursor = await sync_all(client)
    assert "panmen-grand-canal-cruise" not in [c["id"] for c in fresh_changes]
    assert (await client.get("/v1/sync", params={"since": problem["purged_through"]})).status_code == 200
    assert (await client.get("/v1/sync", params={"since": cursor})).status_code == 200


async def test_purge_keeps_pois_that_routes_use(client, auth, runtime) -> None:
    admin, operator = await auth("admin"), await auth("operator")
    assert (await client.post("/v1/pois", json=_new_poi(), headers=admin)).status_code == 201
    route = {
        "id": "test-tea-walk",
        "status": "published",
        "name": {"zh-Hans": "茶", "en": "Tea"},
        "summary": {"zh-Hans": "茶", "en": "Tea"},
        "theme": "food",
        "schedule": "Mo-Su 19:00-20:00",
        "stops": [
            {"poi_id": "pingjiang-road", "dwell_minutes": 10},
            {"poi_id": "test-teahouse", "dwell_minutes": 30},
        ],
        "legs": [{"mode": "walk"}],
    }
    assert (await client.post("/v1/routes", json=route, headers=operator)).status_code == 201
    assert (await client.delete("/v1/pois/test-teahouse", headers=admin)).status_code == 204
    report = await purge_tombstones(runtime, 0, now=datetime.now(UTC) + timedelta(seconds=1))
    assert report.kept == {"pois": 1} and report.purged == {}
    async with runtime.sessionmaker() as session:
        assert (await session.get(Poi, "test-teahouse")).deleted_at is not None
    # Once the route using it is a tombstone too, one purge takes both (the route first).
    assert (await client.delete("/v1/routes/test-tea-walk", headers=operator)).status_code == 204
    report = await purge_tombstones(runtime, 0, now=datetime.now(UTC) + timedelta(seconds=1))
    assert report.purged == {"routes": 1, "pois": 1} and report.kept == {}
    async with runtime.sessionmaker() as session:
        assert await session.get(Poi, "test-teahouse") is None


async def test_cli_purge(client, auth, settings) -> None:
    before = await _old_tombstones(client, auth)
    env = dict(os.environ)
    env.update(
        TOURAPI_DATABASE_URL=settings.database_url,
        TOURAPI_SECRET_KEY=SECRET,
        TOURAPI_REDIS_NAMESPACE=settings.redis_namespace,
        TOURAPI_LOG_LEVEL="WARNING",
    )
    env.pop("TOURAPI_REDIS_URL", None)
    if settings.redis_url:
        env["TOURAPI_REDIS_URL"] = settings.redis_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tourapi",
        "sync",
        "purge",
        "--older-than-days",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "routes: 1" in out.decode()
    assert (await client.get("/v1/sync", params={"since": before})).status_code == 410


def test_registry_rejects_models_that_cannot_sync() -> None:
    class NotSynced:
        id = "x"

    with pytest.raises(TypeError):
        register_sync_source("bogus", NotSynced, lambda row: {})
    with pytest.raises(TypeError):
        register_sync_source("bogus", Poi)
    assert "bogus" not in [s.entity for s in sync_sources()]
    assert [s.entity for s in sync_sources()][:2] == ["pois", "routes"]
