"""Operators' live API: summary, history, alerts with hysteresis, the event stream. Both backends."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import httpx
import shapely
from test_sessions import CENTRE, LION, away, ping, send, start

from tourapi.domain.live import services as live_services
from tourapi.geo.index import FenceSource, GeofenceIndex
from tourapi.timeutil import night_of


async def enter_lion(client, n: int) -> list[tuple[str, dict]]:
    sessions = [await start(client) for _ in range(n)]
    for sid, headers in sessions:
        await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 20)])
    return sessions


async def test_summary_counts_sessions_and_venues(client, auth) -> None:
    await enter_lion(client, 3)
    await start(client)  # active, but nowhere yet
    response = await client.get("/v1/live/summary", headers=await auth("operator"))
    assert response.status_code == 200
    body = response.json()
    assert body["active_sessions"]["total"] == 4
    lion = next(p for p in body["pois"] if p["poi_id"] == LION)
    assert lion["occupancy"] == 3 and lion["entries_tonight"] == 3 and lion["unique_visitors_tonight"] == 3
    assert lion["level"] == "comfortable"
    assert body["as_of"].endswith("+08:00")


async def test_live_api_is_for_operators_only(client, auth) -> None:
    assert (await client.get("/v1/live/summary")).status_code == 401
    assert (await client.get("/v1/live/summary", headers=await auth("staff-nets"))).status_code == 403
    assert (await client.get("/v1/live/summary", headers=await auth("admin"))).status_code == 200


async def test_alert_raised_once_with_hysteresis_and_acknowledged(client, runtime, auth) -> None:
    admin, operator = await auth("admin"), await auth("operator")
    await client.patch(f"/v1/pois/{LION}", json={"capacity": 10}, headers=admin)
    await runtime.jobs.elect()
    assert runtime.jobs.is_leader
    sessions = await enter_lion(client, 8)  # 80%: busy
    published = await runtime.jobs.aggregate()
    kinds = [kind for kind, _ in published]
    assert "crowd_level" in kinds and "alert" in kinds and "occupancy" in kinds
    alert = next(data for kind, data in published if kind == "alert")
    assert (alert["poi_id"], alert["level"], alert["occupancy"]) == (LION, "busy", 8)
    # Still busy on the next tick: no second alert.
    assert [k for k, _ in await runtime.jobs.aggregate() if k == "alert"] == []
    # One visitor leaves (7 = 70%, above the 75% re-arm line? no: 7+0.5 -> comfortable) and comes back.
    sid, headers = sessions[0]
    await send(client, sid, headers, [ping(away(200), 10)])
    await runtime.jobs.aggregate()
    await send(client, sid, headers, [ping((CENTRE.x, CENTRE.y), 5)])
    again = [data for kind, data in await runtime.jobs.aggregate() if kind == "alert"]
    # 7/10 + 5% = 75% < 80%: re-armed, so reaching 80% again raises a new alert.
    assert [a["level"] for a in again] == ["busy"]

    listed = (await client.get("/v1/live/alerts", headers=operator)).json()
    assert [a["level"] for a in listed] == ["busy", "busy"]
    acked = await client.post(f"/v1/live/alerts/{listed[0]['id']}/ack", headers=operator)
    assert acked.status_code == 200 and acked.json()["acked_by"] == "operator"
    still_open = (await client.get("/v1/live/alerts", headers=operator)).json()
    assert [a["id"] for a in still_open] == [listed[1]["id"]]


async def test_capacity_change_applies_at_once(client, runtime, auth) -> None:
    await runtime.jobs.elect()
    await enter_lion(client, 5)
    await runtime.jobs.aggregate()
    position = await runtime.events.last_id()
    await client.patch(f"/v1/pois/{LION}", json={"capacity": 5}, headers=await auth("admin"))
    # Before any aggregator tick: the summary and the public level already use the new capacity.
    summary = (await client.get("/v1/live/summary", headers=await auth("operator"))).json()
    lion = next(p for p in summary["pois"] if p["poi_id"] == LION)
    assert (lion["capacity"], lion["level"]) == (5, "full")
    assert (await client.get(f"/v1/pois/{LION}/crowd")).json()["level"] == "full"
    await runtime.jobs.aggregate()  # (or the app's own tick, which may come first)
    published = [(kind, data) for _, kind, data in await runtime.events.after(position)]
    assert ("crowd_level", LION, "full") in [(k, d.get("poi_id"), d.get("to")) for k, d in published]
    assert ("alert", LION, "full") in [(k, d.get("poi_id"), d.get("level")) for k, d in published]


async def test_history_series_from_snapshots(client, runtime, auth) -> None:
    await enter_lion(client, 2)
    await runtime.jobs.snapshot(force=True)
    body = (
        await client.get(f"/v1/live/pois/{LION}/history", params={"hours": 1}, headers=await auth("operator"))
    ).json()
    assert len(body["series"]) == 13  # 60 min / 5 min + the current bucket
    assert body["series"][-1]["occupancy"] == 2
    assert all(point["occupancy"] == 0 for point in body["series"][:-1])
    assert body["live"]["occupancy"] == 2


async def test_event_stream_resumes_after_last_event_id(client, server_url, runtime, auth) -> None:
    headers = await auth("operator")
    await runtime.jobs.elect()
    await enter_lion(client, 1)
    published = await runtime.jobs.aggregate()
    assert published
    first_id = await runtime.events.last_id()
    await enter_lion(client, 1)
    await runtime.jobs.aggregate()
    # Resume after first_id: the client gets exactly the later events, with their ids.
    async with (
        httpx.AsyncClient(base_url=server_url, timeout=10) as http,
        http.stream(
            "GET",
            "/v1/live/stream",
            headers={**headers, "Last-Event-ID": first_id, "Accept-Encoding": "gzip"},
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        lines = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    ids = [line[4:].strip() for line in lines if line.startswith("id:")]
    assert ids and ids[0] > first_id
    assert any(line.startswith("event: occupancy") for line in lines)


async def test_event_stream_starts_with_snapshot(server_url, auth) -> None:
    async with (
        httpx.AsyncClient(base_url=server_url, timeout=10) as http,
        http.stream("GET", "/v1/live/stream", headers=await auth("operator")) as response,
    ):
        event, data = None, None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            if line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                break
    assert event == "snapshot" and "pois" in data and "active_sessions" in data


async def test_bad_last_event_id(client, auth) -> None:
    response = await client.get(
        "/v1/live/stream", headers={**await auth("operator"), "Last-Event-ID": "x; drop"}
    )
    assert response.status_code == 422 and response.json()["field"] == "Last-Event-ID"


# ---- the summary's cost does not grow with the catalogue -----------------------------------------------------

_counting: ContextVar[bool] = ContextVar("counting_redis_round_trips", default=False)


@contextmanager
def round_trips(redis) -> Iterator[list[str]]:
    """Count the requests sent to Redis by code run inside the block (not by background tasks): one per
    command or script call, one per pipeline, however many commands it carries."""
    sent: list[str] = []
    execute_command, pipeline = redis.execute_command, redis.pipeline

    async def counted_command(*args, **kwargs):
        if _counting.get():
            sent.append(str(args[0]))
        return await execute_command(*args, **kwargs)

    def counted_pipeline(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted_execute(*a, **k):
            if _counting.get():
                sent.append(f"pipeline of {len(pipe)}")
            return await execute(*a, **k)

        pipe.execute = counted_execute
        return pipe

    redis.execute_command, redis.pipeline = counted_command, counted_pipeline
    token = _counting.set(True)
    try:
        yield sent
    finally:
        _counting.reset(token)
        redis.execute_command, redis.pipeline = execute_command, pipeline


def venues(n: int) -> GeofenceIndex:
    """A catalogue of ``n`` small square venues."""
    sources = [
        FenceSource(
            f"venue-{n}-{i:04d}",
            shapely.box(120.5 + i * 0.001, 31.3, 120.5005 + i * 0.001, 31.3005),
            None,
            50,
            300,
        )
        for i in range(n)
    ]
    return GeofenceIndex.build(sources, 1, 0.0)


async def busy_night(runtime, index: GeofenceIndex) -> None:
    """Every venue has visitors inside, entries, check-ins and unique visitors tonight, on every shard."""
    k, night = runtime.live.keys, night_of(datetime.now(UTC))
    pipe = runtime.redis.pipeline(transaction=False)
    for n, source in enumerate(index.sources):
        shard = n % k.shards
        pipe.hincrby(k.occupancy(shard), source.poi_id, 3)
        pipe.hincrby(k.entries(shard, night), source.poi_id, 5)
        pipe.hincrby(k.checkins(shard, night), source.poi_id, 2)
        pipe.pfadd(k.visitors(shard, night, source.poi_id), "visitor-a", "visitor-b")
        pipe.zadd(k.active(shard), {f"session-{n}": time.time() + 600})
    await pipe.execute()


async def test_summary_round_trips_do_not_grow_with_the_number_of_venues(runtime) -> None:
    shards = runtime.live.keys.shards
    sent: dict[int, list[str]] = {}
    for n in (40, 400):
        runtime.fences.index = venues(n)
        await busy_night(runtime, runtime.fences.index)
        await live_services.summary(runtime)  # scripts loaded, connections open
        with round_trips(runtime.redis) as sent[n]:
            body = await live_services.summary(runtime)
        assert len(body["pois"]) == n
        assert {
            (p["occupancy"], p["entries_tonight"], p["checkins_tonight"], p["unique_visitors_tonight"])
            for p in body["pois"]
        } == {(3, 5, 2, 2)}
        assert body["active_sessions"]["total"] >= n
    # A few pipelines (active sessions, occupancy, nightly counters, unique visitors), at most one call per
    # shard, whether the catalogue has 40 venues or 400.
    assert len(sent[400]) == len(sent[40]) <= 3 + shards, sent[400]


# ---- counts, never individuals -------------------------------------------------------------------------------

OCCUPANCY_ROW = {"poi_id", "occupancy", "capacity", "level", "enters", "exits", "dwells", "checkins"}
EVENT_FIELDS = {
    "occupancy": {"pois"},
    "checkin": {"pois"},
    "crowd_level": {"poi_id", "from", "to", "capacity"},
    "alert": {
        "id",
        "poi_id",
        "level",
        "occupancy",
        "capacity",
        "raised_at",
        "acked_at",
        "acked_by",
        "cleared_at",
    },
}


async def test_operators_get_counts_per_venue_and_the_public_only_levels(client, runtime, auth) -> None:
    """What the live API and its stream say is a count per venue and tick: no session or install id, no
    visitor token, no position, no per-visitor timestamp. The public side says only a level."""
    admin, operator = await auth("admin"), await auth("operator")
    await client.patch(f"/v1/pois/{LION}", json={"capacity": 2}, headers=admin)
    await runtime.jobs.elect()
    installs = ["install-privacy-1", "install-privacy-2"]
    sessions = [await start(client, install) for install in installs]
    for sid, headers in sessions:
        await send(client, sid, headers, [ping(away(200), 60), ping((CENTRE.x, CENTRE.y), 10)])
    checkpoint = (await client.get(f"/v1/pois/{LION}/checkpoints", headers=admin)).json()[0]
    sid, headers = sessions[0]
    checked = await client.post(
        "/v1/checkins",
        headers=headers,
        json={"session_id": sid, "token": checkpoint["url"], "lon": CENTRE.x, "lat": CENTRE.y, "accuracy": 8},
    )
    assert checked.status_code == 201, checked.text
    await runtime.jobs.aggregate()
    await runtime.jobs.snapshot(force=True)

    events = await runtime.events.after("0-0")
    assert {kind for _, kind, _ in events} >= {"occupancy", "checkin", "crowd_level", "alert"}
    for _, kind, data in events:
        assert set(data) == EVENT_FIELDS[kind], (kind, data)
        if kind == "occupancy":
            assert all(set(row) == OCCUPANCY_ROW for row in data["pois"])
        if kind == "checkin":
            assert all(set(row) == {"poi_id", "count"} for row in data["pois"])
    said = json.dumps(
        [
            events,
            (await client.get("/v1/live/summary", headers=operator)).json(),
            (await client.get(f"/v1/live/pois/{LION}/history", headers=operator)).json(),
            (await client.get("/v1/live/alerts", params={"status": "all"}, headers=operator)).json(),
        ]
    )
    night = night_of(datetime.now(UTC)).isoformat()
    for install in installs:
        ihash = runtime.live.install_hash(install)
        for secret in (install, ihash, runtime.live.visitor_token(ihash, night)):
            assert secret not in said
    for sid, headers in sessions:
        assert sid not in said and headers["Authorization"].split()[1] not in said
    for coordinate in (f"{CENTRE.x:.4f}", f"{CENTRE.y:.4f}", f"{CENTRE.x:.3f}"[:-1]):
        assert coordinate not in said

    # The public side: a level, no count (not even for the visitor's own venue).
    crowd = await client.get(f"/v1/pois/{LION}/crowd")
    assert set(crowd.json()) == {"poi_id", "level", "as_of"} and crowd.json()["level"] == "full"
    poi = json.dumps((await client.get(f"/v1/pois/{LION}")).json())
    for word in ("occupancy", "entries", "checkins_tonight", "unique", "visitors_tonight"):
        assert word not in poi
    for path in ("/v1/live/summary", f"/v1/live/pois/{LION}/history", "/v1/live/alerts", "/v1/live/stream"):
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=headers)).status_code == 403  # a visitor's session token


async def test_event_stream_sends_keep_alives_and_an_id_with_every_event(
    server_url, runtime, auth, monkeypatch
) -> None:
    monkeypatch.setattr(live_services, "KEEPALIVE_S", 0.3)
    await runtime.events.publish("checkin", {"pois": [{"poi_id": LION, "count": 1}]})
    async with (
        httpx.AsyncClient(base_url=server_url, timeout=10) as http,
        http.stream("GET", "/v1/live/stream", headers=await auth("operator")) as response,
    ):
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            if len([x for x in lines if x.startswith(":")]) >= 2:
                break
    assert response.headers["cache-control"] == "no-store"
    blocks = "\n".join(lines).split("\n\n")
    events = [b for b in blocks if "data:" in b]
    assert events and all(re.search(r"^id: \d+-\d+$", b, re.MULTILINE) for b in events)
    keep_alives = [b.strip() for b in blocks if b.strip().startswith(": keep-alive")]
    assert len(keep_alives) >= 2
    assert all(b == ": keep-alive" for b in keep_alives)  # a pure comment: an empty "data:" would be an event
