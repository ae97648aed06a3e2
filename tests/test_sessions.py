"""Live visitor sessions: pings, geofence transitions, occupancy, crowd levels, erasure.

Runs on the embedded in-process Redis and on a real Redis server (the ``backend`` parameter).
Walks are synthetic but cross the real fixture geofence of the Lion Grove Garden.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import shapely

from tourapi.geo.geometry import M_PER_DEG
from tourapi.settings import DEFAULT_FIXTURES

FIXTURE = {
    f["properties"]["id"]: f for f in json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())["features"]
}
LION = "lion-grove-garden"
LION_FENCE = shapely.geometry.shape(FIXTURE[LION]["properties"]["geofence"])
LION_DWELL = FIXTURE[LION]["properties"]["dwell_threshold_s"]
CENTRE = LION_FENCE.centroid


def offset(point: shapely.Point, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    import math

    return (point.x + east_m / (M_PER_DEG * math.cos(math.radians(point.y))), point.y + north_m / M_PER_DEG)


ALL_FENCES = [shapely.geometry.shape(f["properties"]["geofence"]) for f in FIXTURE.values()]


def north_edge_m() -> float:
    return (LION_FENCE.bounds[3] - CENTRE.y) * M_PER_DEG


def away(metres: float = 150.0) -> tuple[float, float]:
    """A point about ``metres`` from the Lion Grove that is in no fixture geofence (even widened)."""
    for north, east in ((0, 1), (-1, 0), (0, -1), (1, 0)):
        lon_lat = offset(
            CENTRE, north_m=north * (north_edge_m() + metres), east_m=east * (north_edge_m() + metres)
        )
        point = shapely.Point(*lon_lat)
        if all(point.distance(fence) * M_PER_DEG > 40 for fence in ALL_FENCES):
            return lon_lat
    raise AssertionError("no free spot around the Lion Grove")


def stamp(seconds_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return moment.replace(
        microsecond=moment.microsecond // 1000 * 1000
    ).isoformat()  # the API keeps milliseconds


def ping(lon_lat: tuple[float, float], seconds_ago: float, accuracy: float = 8.0) -> dict:
    return {"lon": lon_lat[0], "lat": lon_lat[1], "accuracy": accuracy, "timestamp": stamp(seconds_ago)}


async def start(client, install: str | None = None) -> tuple[str, dict]:
    response = await client.post(
        "/v1/sessions", json={"install_id": install or f"install-{uuid.uuid4()}", "locale": "en"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["session_id"], {"Authorization": f"Bearer {body['token']}"}


async def send(client, sid: str, headers: dict, pings: list[dict], **extra) -> dict:
    response = await client.post(f"/v1/sessions/{sid}/pings", json={"pings": pings, **extra}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def crowd(client, poi: str = LION) -> str:
    return (await client.get(f"/v1/pois/{poi}/crowd")).json()["level"]


async def test_walk_through_a_garden_enter_dwell_exit(client, runtime) -> None:
    sid, headers = await start(client)
    south = away(150)
    north = away(120)
    t0 = LION_DWELL + 400  # seconds ago when the walk starts
    walk = [ping(south, t0), ping(offset(CENTRE, north_m=-20), t0 - 60), ping((CENTRE.x, CENTRE.y), t0 - 120)]
    first = await send(client, sid, headers, walk)
    assert [(t["type"], t["poi_id"]) for t in first["transitions"]] == [("enter", LION)]
    assert first["inside"] == [LION]
    assert await runtime.live.poi_occupancy(LION) == 1

    # Still inside after the dwell threshold: one dwell, reported once.
    stay = [
        ping((CENTRE.x, CENTRE.y), t0 - 60 - LION_DWELL),
        ping(offset(CENTRE, north_m=10), t0 - 70 - LION_DWELL),
    ]
    second = await send(client, sid, headers, stay)
    assert [(t["type"], t["poi_id"]) for t in second["transitions"]] == [("dwell", LION)]
    third = await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), t0 - 80 - LION_DWELL)])
    assert third["transitions"] == []

    leave = await send(client, sid, headers, [ping(north, 5)])
    assert [(t["type"], t["poi_id"], t["reason"]) for t in leave["transitions"]] == [("exit", LION, "left")]
    assert leave["inside"] == []
    assert await runtime.live.poi_occupancy(LION) == 0


async def test_gps_jitter_at_the_boundary_does_not_flap(client, runtime) -> None:
    sid, headers = await start(client)
    edge = north_edge_m()
    margin = runtime.settings.hysteresis_m
    jitter = []
    for n in range(12):
        # Alternate 4 m inside and 4 m outside the north edge: well within the hysteresis margin.
        jitter.append(ping(offset(CENTRE, north_m=edge + (-4 if n % 2 == 0 else 4)), 600 - n * 20))
    assert margin > 4
    result = await send(client, sid, headers, jitter)
    assert [t["type"] for t in result["transitions"]] == ["enter"]
    assert result["inside"] == [LION]


async def test_late_out_of_order_batch_cannot_undo_a_later_state(client, runtime) -> None:
    sid, headers = await start(client)
    inside = (CENTRE.x, CENTRE.y)
    outside = away(200)
    # Arrives in the wrong order within a batch: processed in timestamp order.
    shuffled = [ping(inside, 100), ping(outside, 300), ping(inside, 200)]
    result = await send(client, sid, headers, shuffled)
    assert [t["type"] for t in result["transitions"]] == ["enter"]
    assert (
        result["transitions"][0]["at"]
        == datetime.fromisoformat(shuffled[2]["timestamp"]).astimezone(result_tz(result)).isoformat()
    )
    # A batch from earlier than the last processed ping: accepted, but it cannot take the visitor out.
    late = await send(client, sid, headers, [ping(outside, 250), ping(outside, 240)])
    assert late["accepted"] == 2 and late["late"] == 2
    assert late["transitions"] == [] and late["inside"] == [LION]


def result_tz(result: dict):
    return datetime.fromisoformat(result["expires_at"]).tzinfo


async def test_rejected_pings_carry_reasons_and_do_not_block_the_batch(client) -> None:
    sid, headers = await start(client)
    inside = (CENTRE.x, CENTRE.y)
    pings = [
        ping(inside, -3600),  # an hour in the future
        ping(inside, 3 * 86400),  # days old
        {"lon": inside[0], "lat": inside[1], "accuracy": 5, "timestamp": "2026-11-28T20:00:00"},  # no offset
        {"lon": 500.0, "lat": inside[1], "accuracy": 5, "timestamp": stamp(30)},
        ping(inside, 30),
    ]
    result = await send(client, sid, headers, pings)
    reasons = {r["index"]: r["reason"] for r in result["rejected"]}
    assert reasons == {0: "in_future", 1: "too_old", 2: "timestamp_without_offset", 3: "out_of_range"}
    assert result["accepted"] == 1
    assert [t["type"] for t in result["transitions"]] == ["enter"]


async def test_inaccurate_pings_cause_no_transitions(client) -> None:
    sid, headers = await start(client)
    inside = (CENTRE.x, CENTRE.y)
    outside = away(300)
    # Worse than the global threshold, and worse than the garden is wide: no enter.
    fuzzy = await send(
        client, sid, headers, [ping(inside, 100, accuracy=400), ping(inside, 90, accuracy=200)]
    )
    assert fuzzy["transitions"] == [] and fuzzy["inside"] == []
    precise = await send(client, sid, headers, [ping(inside, 80)])
    assert [t["type"] for t in precise["transitions"]] == ["enter"]
    # A fuzzy ping far outside cannot take the visitor out either.
    still = await send(client, sid, headers, [ping(outside, 70, accuracy=400)])
    assert still["transitions"] == [] and still["inside"] == [LION]


async def test_batch_in_gcj02(client) -> None:
    from tourapi.geo.crs import wgs84_to_gcj02

    sid, headers = await start(client)
    result = await send(client, sid, headers, [ping(wgs84_to_gcj02(CENTRE.x, CENTRE.y), 30)], crs="gcj02")
    assert result["inside"] == [LION]


async def test_presence_timeout_records_an_exit(client, runtime) -> None:
    sid, headers = await start(client)
    await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 60)])
    assert await runtime.live.poi_occupancy(LION) == 1
    report = await runtime.live.sweep(now=time.time() + runtime.settings.presence_timeout_s + 5)
    assert report.timed_out == 1
    assert await runtime.live.poi_occupancy(LION) == 0
    stream = await runtime.redis.xrange(
        runtime.live.keys.transitions(runtime.live.keys.shard_of_session(sid))
    )
    assert [(f["t"], f["p"], f["r"]) for _, f in stream] == [
        ("enter", LION, "entered"),
        ("exit", LION, "timeout"),
    ]


async def test_concurrent_sessions_count_and_crowd_levels(client, runtime, auth) -> None:
    # A small capacity makes the tiers reachable: 10 people, busy at 8, crowded at 9, full at 10.
    patched = await client.patch(f"/v1/pois/{LION}", json={"capacity": 10}, headers=await auth("admin"))
    assert patched.status_code == 200
    sessions = [await start(client) for _ in range(11)]
    assert await crowd(client) == "comfortable"

    async def enter(sid: str, headers: dict) -> None:
        await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 30)])

    await asyncio.gather(*(enter(sid, h) for sid, h in sessions[:8]))
    assert await runtime.live.poi_occupancy(LION) == 8
    assert await crowd(client) == "busy"
    await enter(*sessions[8])
    assert await crowd(client) == "crowded"
    await asyncio.gather(*(enter(sid, h) for sid, h in sessions[9:]))
    assert await runtime.live.poi_occupancy(LION) == 11
    body = (await client.get(f"/v1/pois/{LION}/crowd")).json()
    assert body["level"] == "full" and set(body) == {"poi_id", "level", "as_of"}, "no counts in public"


async def test_ending_a_session_erases_everything(client, runtime) -> None:
    install = f"install-{uuid.uuid4()}"
    sid, headers = await start(client, install)
    await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 30)])
    ended = await client.delete(f"/v1/sessions/{sid}", headers=headers)
    assert ended.status_code == 204
    assert await runtime.live.poi_occupancy(LION) == 0
    ihash = runtime.live.install_hash(install)
    leftovers = []
    async for key in runtime.redis.scan_iter(match=f"{runtime.settings.redis_namespace}:*"):
        kind = await runtime.redis.type(key)
        dump = {
            "hash": lambda k: runtime.redis.hgetall(k),
            "zset": lambda k: runtime.redis.zrange(k, 0, -1),
            "set": lambda k: runtime.redis.smembers(k),
            "string": lambda k: runtime.redis.get(k),
            "stream": lambda k: runtime.redis.xrange(k),
        }.get(kind)
        try:
            content = str(await dump(key)) if dump else ""
        except UnicodeDecodeError:
            content = ""  # a HyperLogLog's registers: binary, and no identifier can be read back from them
        if sid in key or sid in content or ihash in key or ihash in content or install in content:
            leftovers.append(key)
    assert leftovers == []
    again = await client.post(
        f"/v1/sessions/{sid}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 5)]}, headers=headers
    )
    assert again.status_code == 404


async def test_erase_by_install_id_ends_all_its_sessions(client, runtime) -> None:
    install = f"install-{uuid.uuid4()}"
    first = await start(client, install)
    second = await start(client, install)
    for sid, headers in (first, second):
        await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 30)])
    assert await runtime.live.poi_occupancy(LION) == 2
    response = await client.post("/v1/privacy/erase", json={"install_id": install})
    assert response.json() == {"sessions_erased": 2}
    assert await runtime.live.poi_occupancy(LION) == 0


async def test_session_tokens_are_scoped(client) -> None:
    sid_a, headers_a = await start(client)
    sid_b, _ = await start(client)
    other = await client.post(
        f"/v1/sessions/{sid_b}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 5)]}, headers=headers_a
    )
    assert other.status_code == 403
    anonymous = await client.post(
        f"/v1/sessions/{sid_a}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 5)]}
    )
    assert anonymous.status_code == 401


@pytest.mark.parametrize("count", [0, 101])
async def test_batch_size_bounds(client, count: int) -> None:
    sid, headers = await start(client)
    response = await client.post(
        f"/v1/sessions/{sid}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 5)] * count}, headers=headers
    )
    assert response.status_code == 422 and response.json()["field"] == "body.pings"


async def test_unknown_route_is_refused(client) -> None:
    response = await client.post("/v1/sessions", json={"install_id": "install-12345678", "route_id": "nope"})
    assert response.status_code == 422 and response.json()["field"] == "route_id"


async def test_counters_and_five_minute_snapshot(client, runtime) -> None:
    from sqlalchemy import select

    from tourapi.db.models import OccupancySnapshot
    from tourapi.timeutil import night_of

    install = f"install-{uuid.uuid4()}"
    for _ in range(2):  # the same install twice: two entries, one unique visitor
        sid, headers = await start(client, install)
        await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 30)])
        await client.delete(f"/v1/sessions/{sid}", headers=headers)
    sid, headers = await start(client)
    await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 20)])
    night = night_of(datetime.now(UTC))
    counters = (await runtime.live.night_counters(night))[LION]
    assert counters == {"entries": 3, "checkins": 0, "unique": 2}

    written = await runtime.jobs.snapshot(force=True)
    assert written >= 1
    async with runtime.sessionmaker() as session:
        rows = (
            await session.scalars(select(OccupancySnapshot).where(OccupancySnapshot.poi_id == LION))
        ).all()
    assert [(r.occupancy, r.entries_tonight, r.unique_tonight) for r in rows] == [(1, 3, 2)]
    assert rows[0].bucket.minute % 5 == 0 and rows[0].bucket.second == 0


@pytest.mark.parametrize("local_time", ["09:30", "11:59", "12:00", "23:30", "03:00", "06:00"])
async def test_sessions_start_at_any_time_of_day(client, monkeypatch, local_time: str) -> None:
    """A session started in the morning belongs to the coming night; its end is always in the future."""
    from tourapi.domain.sessions import services
    from tourapi.timeutil import TZ

    hh, mm = (int(x) for x in local_time.split(":"))
    fake_now = datetime.now(TZ).replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    monkeypatch.setattr(services, "clock", lambda: fake_now)
    response = await client.post("/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}"})
    assert response.status_code == 201, response.text
    ends = datetime.fromisoformat(response.json()["ends_at"]).timestamp()
    expires = datetime.fromisoformat(response.json()["expires_at"]).timestamp()
    assert ends > fake_now and fake_now < expires <= ends
    assert ends - fake_now <= 24 * 3600
