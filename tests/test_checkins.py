"""QR check-ins: verification with one problem type per refusal, idempotency, counters, repair, rebuild.

Runs on both backends (SQLite + in-process Redis, PostGIS + real Redis).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import socket
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis
import redis.exceptions
import shapely
from click.testing import CliRunner
from conftest import lifespan, settings_env
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import func, select, update

from tourapi.app import create_app
from tourapi.cli import main
from tourapi.db.models import Checkin, OccupancySnapshot
from tourapi.domain.checkins import services as checkin_services
from tourapi.domain.checkins.counters import rebuild_night, repair_uncounted
from tourapi.domain.checkins.services import CheckinService
from tourapi.geo.crs import wgs84_to_gcj02
from tourapi.geo.geometry import M_PER_DEG
from tourapi.live.store import CheckinCount, LiveStore
from tourapi.runtime import Runtime
from tourapi.security.keys import retire, rotate
from tourapi.settings import DEFAULT_FIXTURES
from tourapi.timeutil import TZ, night_of
from tourapi.web import ratelimit

POIS = {
    f["properties"]["id"]: f for f in json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())["features"]
}
FIXTURE_CHECKPOINTS = json.loads((DEFAULT_FIXTURES / "checkpoints.json").read_text())["checkpoints"]
NETS = "master-of-the-nets-garden"
LION = "lion-grove-garden"
PIER = "ancient-canal-cruise-pier-xinshiqiao"  # its boarding gate requires proximity in the fixture
PROBLEM = "urn:tourapi:problem:"


def problem(response, status: int, slug: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM + slug, body
    if field is not None:
        assert body.get("field") == field, body
    return body


async def start(client, route_id: str | None = None, install: str | None = None) -> tuple[str, dict]:
    body = {"install_id": install or f"install-{uuid.uuid4()}", "locale": "en"}
    if route_id:
        body["route_id"] = route_id
    response = await client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    return data["session_id"], {"Authorization": f"Bearer {data['token']}"}


async def checkpoints(client, auth, poi: str) -> list[dict]:
    response = await client.get(f"/v1/pois/{poi}/checkpoints", headers=await auth("admin"))
    assert response.status_code == 200, response.text
    return response.json()


def token_of(checkpoint: dict) -> str:
    return checkpoint["url"].rsplit("/c/", 1)[1]


async def check_in(
    client, sid: str, headers: dict, *, expect: int | None = None, key: str | None = None, **body
):
    extra = {"Idempotency-Key": key} if key else {}
    response = await client.post(
        "/v1/checkins", json={"session_id": sid, **body}, headers={**headers, **extra}
    )
    if expect is not None:
        assert response.status_code == expect, response.text
    return response


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def raw_token(token: str) -> bytes:
    return base64.b32decode(token + "=" * (-len(token) % 8))


async def db_count(runtime, *where) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Checkin).where(*where)))


def fence(poi: str):
    return shapely.geometry.shape(POIS[poi]["properties"]["geofence"])


def offset(lon: float, lat: float, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    return lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))), lat + north_m / M_PER_DEG


def outside_by(poi: str, metres: float) -> tuple[float, float]:
    """A point due north of the geofence's northernmost vertex, ``metres`` beyond it."""
    coords = list(fence(poi).exterior.coords)
    lon, lat = max(coords, key=lambda c: c[1])
    return offset(lon, lat, north_m=metres)


async def checkpoint_counter(runtime, night, poi: str, checkpoint_id: int) -> int:
    """Check-ins of one checkpoint tonight, summed over the live-state shards."""
    keys = runtime.live.keys
    total = 0
    for shard in keys.all_shards():
        total += int(await runtime.redis.hget(keys.checkins(shard, night), f"{poi}|{checkpoint_id}") or 0)
    return total


async def redis_down(*args, **kwargs):
    """Stands in for a live-store call while Redis is unreachable."""
    raise redis.exceptions.ConnectionError("Redis is down")


async def flush_namespace(runtime) -> None:
    keys = [k async for k in runtime.redis.scan_iter(match=f"{runtime.settings.redis_namespace}:*")]
    if keys:
        await runtime.redis.delete(*keys)


# ---- fixtures and first check-in ---------------------------------------------------------------------------


async def test_every_fixture_venue_has_bilingual_checkpoints(client, auth) -> None:
    expected: dict[str, set[str]] = {}
    for item in FIXTURE_CHECKPOINTS:
        expected.setdefault(item["poi_id"], set()).add(item["slug"])
    assert set(expected) == set(POIS)
    for poi in POIS:
        rows = await checkpoints(client, auth, poi)
        assert {r["slug"] for r in rows} == expected[poi]
        for row in rows:
            assert row["i18n"]["label"]["zh-Hans"] and row["i18n"]["label"]["en"]
            assert row["active"] and row["version"] == 1
            assert row["url"].startswith("http://127.0.0.1:8000/c/")
            assert len(row["manual_code"]) == 7 and row["manual_code"][3] == "-"
    codes = [r["manual_code"] for poi in POIS for r in await checkpoints(client, auth, poi)]
    assert len(codes) == len(set(codes)) == len(FIXTURE_CHECKPOINTS)


async def test_first_checkin_is_201_repeats_are_200_with_the_same_record(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    first = await check_in(client, sid, headers, token=token_of(gate), expect=201)
    record = first.json()
    assert record["poi_id"] == NETS and record["checkpoint_id"] == gate["id"] and record["method"] == "qr"
    assert record["late"] is False
    assert record["night"] == night_of(datetime.now(UTC)).isoformat()
    assert first.headers["cache-control"] == "private, no-store"
    # The whole URL the camera read is accepted too.
    again = await check_in(client, sid, headers, token=gate["url"], expect=200)
    assert again.json() == record
    assert await db_count(runtime) == 1
    night = night_of(datetime.now(UTC))
    counters = (await runtime.live.night_counters(night))[NETS]
    assert counters["checkins"] == 1 and counters["unique"] == 1
    assert await runtime.live.poi_occupancy(NETS) == 1  # a check-in counts as being inside
    # A second visitor on the same night: a new record; the per-checkpoint counter sees both.
    sid2, headers2 = await start(client)
    await check_in(client, sid2, headers2, token=token_of(gate), expect=201)
    counters = (await runtime.live.night_counters(night))[NETS]
    assert counters["checkins"] == 2 and counters["unique"] == 2
    assert await checkpoint_counter(runtime, night, NETS, gate["id"]) == 2
    # One commit per check-in: the repair job flags the rows later, and finds nothing left to count.
    assert await db_count(runtime, Checkin.counted.is_(False)) == 2
    assert await repair_uncounted(runtime, force=True, grace_s=0) == 0
    assert await db_count(runtime, Checkin.counted.is_(True)) == 2
    counters = (await runtime.live.night_counters(night))[NETS]
    assert counters["checkins"] == 2 and counters["unique"] == 2


async def test_visitor_token_is_stored_not_the_install(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, LION))[0]
    install = f"install-{uuid.uuid4()}"
    sid, headers = await start(client, install=install)
    await check_in(client, sid, headers, token=token_of(gate), expect=201)
    night = night_of(datetime.now(UTC))
    async with runtime.sessionmaker() as session:
        row = await session.scalar(select(Checkin))
    assert row.visitor == runtime.live.visitor_token(runtime.live.install_hash(install), night.isoformat())
    assert install not in row.visitor and runtime.live.install_hash(install) not in row.visitor


async def test_fifty_concurrent_identical_checkins_make_one_record(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    responses = await asyncio.gather(
        *(check_in(client, sid, headers, token=token_of(gate)) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [201], statuses
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db_count(runtime) == 1
    counters = (await runtime.live.night_counters(night_of(datetime.now(UTC))))[NETS]
    assert counters["checkins"] == 1 and counters["unique"] == 1


async def test_losers_of_the_unique_constraint_answer_with_the_winners_record(
    client, auth, runtime, monkeypatch
) -> None:
    """Force the race: every request passes the "already checked in?" lookup before any of them inserts,
    so all but one hit the unique constraint and must answer 200 with the winner's record."""
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    racers = 8  # below the connection pool size: each waiting request holds a connection
    arrived: list[int] = []
    everyone_looked = asyncio.Event()
    original = CheckinService._by_slot

    async def lookup_then_wait(self, *args):
        found = await original(self, *args)
        if not getattr(self, "looked", False):  # the first lookup of a request; not the loser's re-read
            self.looked = True
            arrived.append(1)
            if len(arrived) == racers:
                everyone_looked.set()
            await asyncio.wait_for(everyone_looked.wait(), 20)
        return found

    monkeypatch.setattr(CheckinService, "_by_slot", lookup_then_wait)
    responses = await asyncio.gather(
        *(check_in(client, sid, headers, token=token_of(gate)) for _ in range(racers))
    )
    assert sorted(r.status_code for r in responses) == [200] * (racers - 1) + [201], [
        r.text for r in responses
    ]
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert await db_count(runtime) == 1
    counters = (await runtime.live.night_counters(night_of(datetime.now(UTC))))[NETS]
    assert counters["checkins"] == 1


async def test_idempotency_key_returns_the_same_record(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    scanned = datetime.now(TZ) - timedelta(minutes=3)
    first = await check_in(
        client, sid, headers, key="retry-1", token=token_of(gate), scanned_at=scanned.isoformat(), expect=201
    )
    # The app's retry carries a slightly different scanned_at: still the same record.
    retry = await check_in(
        client,
        sid,
        headers,
        key="retry-1",
        token=token_of(gate),
        scanned_at=(scanned + timedelta(seconds=40)).isoformat(),
        expect=200,
    )
    assert retry.json() == first.json()
    assert datetime.fromisoformat(first.json()["scanned_at"]) == scanned
    # Concurrent retries with one key: one record.
    other = (await checkpoints(client, auth, NETS))[1]
    burst = await asyncio.gather(
        *(check_in(client, sid, headers, key="retry-2", token=token_of(other)) for _ in range(10))
    )
    assert sorted(r.status_code for r in burst) == [200] * 9 + [201]
    assert await db_count(runtime) == 2
    bad = await check_in(client, sid, headers, key="x" * 65, token=token_of(gate))
    problem(bad, 422, "invalid-input", "Idempotency-Key")


# ---- refusals ----------------------------------------------------------------------------------------------


async def test_forged_altered_unknown_key_and_malformed_tokens_are_refused(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    good = token_of(gate)
    raw = raw_token(good)
    kid, body, mac = raw[:2], raw[:-10], raw[-10:]
    sid, headers = await start(client)

    # Forged: the right layout and a real kid, signed with a key that is not the server's.
    forged = b32(
        body + hmac.new(b"guessed-key", b"tourapi/checkpoint/1:" + body, hashlib.sha256).digest()[:10]
    )
    refused = await check_in(client, sid, headers, token=forged)
    assert problem(refused, 422, "invalid-token", "token")["detail"] == "the code's signature is not valid"

    # Altered: another checkpoint id with the original signature.
    other_id = gate["id"] + 1
    altered = b32(kid + bytes([other_id]) + body[3:] + mac) if gate["id"] < 127 else None
    assert altered is not None
    problem(await check_in(client, sid, headers, token=altered), 422, "invalid-token", "token")
    # Altered: one character of the printed code changed (every position). The first four characters
    # carry the key id, so a change there may name a key the service does not know instead.
    for i in range(len(good)):
        flipped = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :]
        response = await check_in(client, sid, headers, token=flipped)
        assert response.status_code == 422, response.text
        slugs = {"invalid-token", "unknown-key"} if i < 4 else {"invalid-token"}
        assert response.json()["type"].removeprefix(PROBLEM) in slugs and response.json()["field"] == "token"
    # A key id the service never issued.
    unknown_kid = (
        bytes.fromhex("0000") if runtime.keyring.active["qr"][0] != "0000" else bytes.fromhex("0001")
    )
    problem(
        await check_in(client, sid, headers, token=b32(unknown_kid + raw[2:])), 422, "unknown-key", "token"
    )
    # Not a token at all.
    for junk in ("", "hello", "0" * 23, good[:-3]):
        response = await check_in(client, sid, headers, token=junk)
        problem(response, 422, "invalid-token", "token")
    assert await db_count(runtime) == 0
    # The genuine one still works.
    await check_in(client, sid, headers, token=good, expect=201)


async def test_revoked_poster_is_refused_with_its_own_reason(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    staff = await auth("staff-nets")
    revoked = await client.post(f"/v1/checkpoints/{gate['id']}/revoke", headers=staff)
    assert revoked.status_code == 200, revoked.text
    fresh = revoked.json()
    assert fresh["version"] == gate["version"] + 1 and fresh["manual_code"] != gate["manual_code"]
    assert fresh["url"] != gate["url"]
    sid, headers = await start(client)
    body = problem(
        await check_in(client, sid, headers, token=token_of(gate)), 422, "checkpoint-revoked", "token"
    )
    assert "replaced" in body["detail"] and "staff" in body["detail"]
    # The old manual code is gone too; the new poster works.
    problem(
        await check_in(client, sid, headers, manual_code=gate["manual_code"]),
        422,
        "unknown-manual-code",
        "manual_code",
    )
    await check_in(client, sid, headers, token=token_of(fresh), expect=201)


async def test_rotated_keys_verify_together_and_retired_keys_are_refused(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    old_kid = runtime.keyring.active["qr"][0]
    async with runtime.sessionmaker() as session:
        new_kid = await rotate(session, "qr")
        await session.commit()
    await runtime.reload_keys()
    reprinted = next(c for c in await checkpoints(client, auth, NETS) if c["id"] == gate["id"])
    assert reprinted["kid"] == new_kid and reprinted["url"] != gate["url"]
    assert raw_token(token_of(reprinted))[:2].hex() == new_kid
    # Both posters (old key, new key) are valid while both keys are active.
    sid, headers = await start(client)
    await check_in(client, sid, headers, token=token_of(gate), expect=201)
    await check_in(client, sid, headers, token=token_of(reprinted), expect=200)
    async with runtime.sessionmaker() as session:
        await retire(session, old_kid)
        await session.commit()
    await runtime.reload_keys()
    sid2, headers2 = await start(client)
    body = problem(await check_in(client, sid2, headers2, token=token_of(gate)), 422, "retired-key", "token")
    assert "retired" in body["detail"]
    # A forgery that merely names the retired kid is not reported as a genuine retired poster.
    raw = raw_token(token_of(gate))
    fake = b32(raw[:-10] + bytes(10))
    problem(await check_in(client, sid2, headers2, token=fake), 422, "invalid-token", "token")
    await check_in(client, sid2, headers2, token=token_of(reprinted), expect=201)


async def test_wrong_venue_is_refused(client, auth) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    body = problem(
        await check_in(client, sid, headers, token=token_of(gate), poi_id=LION), 422, "wrong-venue", "poi_id"
    )
    assert NETS in body["detail"]
    await check_in(client, sid, headers, token=token_of(gate), poi_id=NETS, expect=201)


async def test_deleted_checkpoint_is_refused(client, auth) -> None:
    gate = (await checkpoints(client, auth, NETS))[1]
    deleted = await client.delete(f"/v1/checkpoints/{gate['id']}", headers=await auth("staff-nets"))
    assert deleted.status_code == 204
    sid, headers = await start(client)
    problem(await check_in(client, sid, headers, token=token_of(gate)), 422, "checkpoint-inactive", "token")
    problem(await check_in(client, sid, headers, manual_code=gate["manual_code"]), 422, "checkpoint-inactive")
    listed = await checkpoints(client, auth, NETS)
    assert gate["id"] not in {c["id"] for c in listed}


async def test_session_must_match_and_be_active(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    other_sid, _ = await start(client)
    problem(
        await check_in(client, other_sid, headers, token=token_of(gate)),
        403,
        "session-mismatch",
        "session_id",
    )
    staff = await client.post(
        "/v1/checkins", json={"session_id": sid, "token": token_of(gate)}, headers=await auth("staff-nets")
    )
    assert staff.status_code == 403
    anonymous = await client.post("/v1/checkins", json={"session_id": sid, "token": token_of(gate)})
    assert anonymous.status_code == 401
    ended = await client.delete(f"/v1/sessions/{sid}", headers=headers)
    assert ended.status_code == 204
    body = problem(
        await check_in(client, sid, headers, token=token_of(gate)), 409, "session-not-active", "session_id"
    )
    assert "start a new session" in body["detail"]
    assert await db_count(runtime) == 0


async def test_exactly_one_code(client, auth) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    problem(await check_in(client, sid, headers), 422, "invalid-input", "token")
    problem(
        await check_in(client, sid, headers, token=token_of(gate), manual_code=gate["manual_code"]),
        422,
        "invalid-input",
        "token",
    )


async def test_scanned_at_must_be_plausible(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    now = datetime.now(TZ)
    skew = runtime.settings.max_clock_skew_s
    future = await check_in(
        client,
        sid,
        headers,
        token=token_of(gate),
        scanned_at=(now + timedelta(seconds=skew + 60)).isoformat(),
    )
    problem(future, 422, "implausible-scanned-at", "scanned_at")
    hours = runtime.settings.max_late_checkin_h
    ancient = await check_in(
        client,
        sid,
        headers,
        token=token_of(gate),
        scanned_at=(now - timedelta(hours=hours, minutes=5)).isoformat(),
    )
    assert f"{hours} h" in problem(ancient, 422, "implausible-scanned-at", "scanned_at")["detail"]
    naive = await check_in(client, sid, headers, token=token_of(gate), scanned_at="2026-07-18T20:00:00")
    problem(naive, 422, "invalid-input", "scanned_at")
    # Slightly ahead (clock skew) is fine and is recorded as now, not in the future.
    ok = await check_in(
        client,
        sid,
        headers,
        token=token_of(gate),
        scanned_at=(now + timedelta(seconds=skew // 2)).isoformat(),
        expect=201,
    )
    assert datetime.fromisoformat(ok.json()["scanned_at"]) <= datetime.now(TZ)


async def test_late_offline_upload_lands_in_its_night_and_is_flagged(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    scanned = datetime.now(TZ) - timedelta(hours=26)
    response = await check_in(
        client, sid, headers, token=token_of(gate), scanned_at=scanned.isoformat(), expect=201
    )
    record = response.json()
    expected_night = night_of(scanned)
    assert record["late"] is True and record["night"] == expected_night.isoformat()
    assert expected_night != night_of(datetime.now(UTC))
    counters = await runtime.live.night_counters(expected_night)
    assert counters[NETS]["checkins"] == 1 and counters[NETS]["unique"] == 1
    assert await runtime.live.poi_occupancy(NETS) == 0  # an old scan does not place anyone inside now
    # The same checkpoint tonight is a different night: a second record.
    await check_in(client, sid, headers, token=token_of(gate), expect=201)
    # A scan 20 minutes ago is tonight but late: counted, not inside.
    other = (await checkpoints(client, auth, LION))[0]
    late = await check_in(
        client,
        sid,
        headers,
        token=token_of(other),
        scanned_at=(datetime.now(TZ) - timedelta(minutes=20)).isoformat(),
        expect=201,
    )
    assert late.json()["late"] is True
    assert await runtime.live.poi_occupancy(LION) == 0


async def test_proximity_rule(client, auth, runtime) -> None:
    boarding = (await checkpoints(client, auth, PIER))[0]
    assert boarding["require_proximity"] is True
    margin = boarding["proximity_margin_m"]
    token = token_of(boarding)
    sid, headers = await start(client)
    problem(await check_in(client, sid, headers, token=token), 422, "position-required", "lon")
    far_lon, far_lat = outside_by(PIER, 300)
    body = problem(
        await check_in(client, sid, headers, token=token, lon=far_lon, lat=far_lat, accuracy=10),
        422,
        "too-far",
        "lon",
    )
    assert "300 m" in body["detail"]
    limit = runtime.settings.max_ping_accuracy_m
    problem(
        await check_in(client, sid, headers, token=token, lon=far_lon, lat=far_lat, accuracy=limit + 1),
        422,
        "position-too-inaccurate",
        "accuracy",
    )
    # 20 m beyond the fence with 10 m accuracy: within accuracy + margin (10 + 30).
    near_lon, near_lat = outside_by(PIER, 20)
    assert 20 < 10 + margin
    await check_in(client, sid, headers, token=token, lon=near_lon, lat=near_lat, accuracy=10, expect=201)
    # 60 m beyond it is not (another session).
    sid2, headers2 = await start(client)
    lon60, lat60 = outside_by(PIER, 60)
    problem(
        await check_in(client, sid2, headers2, token=token, lon=lon60, lat=lat60, accuracy=10), 422, "too-far"
    )
    # Inside, reported in GCJ-02 (what Chinese map SDKs give): accepted.
    centre = fence(PIER).centroid
    gcj = wgs84_to_gcj02(centre.x, centre.y)
    await check_in(
        client, sid2, headers2, token=token, lon=gcj[0], lat=gcj[1], accuracy=5, crs="gcj02", expect=201
    )
    # Checkpoints without the rule ignore positions.
    gate = (await checkpoints(client, auth, NETS))[0]
    await check_in(client, sid2, headers2, token=token_of(gate), lon=far_lon, lat=far_lat, expect=201)


# ---- manual codes and rate limits ----------------------------------------------------------------------------


async def test_manual_code_resolves_to_the_same_checkpoint(client, auth) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    typed = gate["manual_code"].lower().replace("-", " ")
    first = await check_in(client, sid, headers, manual_code=typed, expect=201)
    assert first.json()["checkpoint_id"] == gate["id"] and first.json()["method"] == "manual"
    # Scanning the QR afterwards is the same check-in.
    again = await check_in(client, sid, headers, token=token_of(gate), expect=200)
    assert again.json()["id"] == first.json()["id"]


def wrong_code(taken: set[str], n: int) -> str:
    alphabet = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
    while True:
        code = "".join(alphabet[(n * 7 + i * 13) % len(alphabet)] for i in range(6))
        n += 1
        if code not in taken:
            return code


async def test_manual_code_guessing_is_rate_limited_per_session_and_ip(client, auth) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    taken = {gate["manual_code"].replace("-", "")}
    sid, headers = await start(client)
    for n in range(10):
        problem(
            await check_in(client, sid, headers, manual_code=wrong_code(taken, n)), 422, "unknown-manual-code"
        )
    limited = await check_in(client, sid, headers, manual_code=wrong_code(taken, 99))
    body = problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 600
    assert "session" in body["detail"]
    # Once limited, even the right code waits (no oracle); the QR still works.
    problem(await check_in(client, sid, headers, manual_code=gate["manual_code"]), 429, "rate-limited")
    await check_in(client, sid, headers, token=token_of(gate), expect=201)
    # New sessions from the same address: the per-address limit (60 failed attempts, the refused ones
    # included: 10 wrong + 2 refused so far) stops them.
    attempts = 12
    while attempts < 60:
        other_sid, other_headers = await start(client)
        for _ in range(min(10, 60 - attempts)):
            problem(
                await check_in(client, other_sid, other_headers, manual_code=wrong_code(taken, attempts)),
                422,
                "unknown-manual-code",
            )
            attempts += 1
    fresh_sid, fresh_headers = await start(client)
    blocked = await check_in(client, fresh_sid, fresh_headers, manual_code=wrong_code(taken, 500))
    assert "ip" in problem(blocked, 429, "rate-limited")["detail"]


async def test_successful_manual_codes_do_not_use_up_the_limit(client, auth) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    for n in range(15):
        response = await check_in(client, sid, headers, manual_code=gate["manual_code"])
        assert response.status_code == (201 if n == 0 else 200), response.text


async def test_rate_limits_are_shared_by_workers(client, auth, settings, backend) -> None:
    if backend != "postgis":
        pytest.skip("the embedded in-process Redis belongs to one process; workers share a real Redis")
    gate = (await checkpoints(client, auth, NETS))[0]
    taken = {gate["manual_code"].replace("-", "")}
    sid, headers = await start(client)
    second = create_app(settings, Runtime.create(settings))
    async with lifespan(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as worker2:
            for n in range(10):
                target = client if n % 2 else worker2
                problem(
                    await check_in(target, sid, headers, manual_code=wrong_code(taken, n)),
                    422,
                    "unknown-manual-code",
                )
            problem(
                await check_in(worker2, sid, headers, manual_code=wrong_code(taken, 50)), 429, "rate-limited"
            )
            problem(
                await check_in(client, sid, headers, manual_code=wrong_code(taken, 51)), 429, "rate-limited"
            )


# ---- Redis outage, repair and rebuild ------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_checkin_is_recorded_when_redis_is_down_and_counted_after_repair(client, auth, runtime) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    healthy = runtime.live
    dead = aioredis.Redis(
        host="127.0.0.1",
        port=closed_port(),
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
    )  # fail at once, not after backoff
    runtime.live = LiveStore(dead, runtime.settings, runtime.settings.resolved_secret())
    try:
        response = await check_in(client, sid, headers, token=token_of(gate), expect=201)
        repeat = await check_in(client, sid, headers, token=token_of(gate), expect=200)
        assert repeat.json()["id"] == response.json()["id"]
    finally:
        runtime.live = healthy
        await dead.aclose()
    night = night_of(datetime.now(UTC))
    assert await db_count(runtime) == 1
    assert await db_count(runtime, Checkin.counted.is_(False)) == 1
    assert (await runtime.live.night_counters(night)).get(NETS, {}).get("checkins", 0) == 0
    # The repair job waits out a grace period (never races the request that counts its own record) ...
    assert await repair_uncounted(runtime, force=True) == 0
    # ... and then counts each missed record exactly once.
    assert await repair_uncounted(runtime, force=True, grace_s=0) == 1
    assert await repair_uncounted(runtime, force=True, grace_s=0) == 0
    counters = (await runtime.live.night_counters(night))[NETS]
    assert counters["checkins"] == 1 and counters["unique"] == 1
    assert await runtime.live.poi_occupancy(NETS) == 1  # recent enough to still count as inside
    assert await db_count(runtime, Checkin.counted.is_(False)) == 0


async def test_redis_failing_between_commit_and_count(client, auth, runtime, monkeypatch) -> None:
    """Redis answers the session check, then fails while counting: the record is kept, uncounted."""
    gate = (await checkpoints(client, auth, LION))[0]
    sid, headers = await start(client)

    async def times_out(*args, **kwargs):
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.live, "record_checkin", times_out)
        await check_in(client, sid, headers, token=token_of(gate), expect=201)
    assert await db_count(runtime, Checkin.counted.is_(False)) == 1
    night = night_of(datetime.now(UTC))
    assert LION not in await runtime.live.night_counters(night)
    assert await repair_uncounted(runtime, force=True, grace_s=0) == 1
    assert (await runtime.live.night_counters(night))[LION]["checkins"] == 1
    # Only the live-state leader runs the job on its own.
    runtime.jobs.is_leader = False
    assert await repair_uncounted(runtime, grace_s=0) == 0


async def test_a_count_whose_answer_was_lost_is_not_counted_again(client, auth, runtime, monkeypatch) -> None:
    """Redis ran the counting script but the reply never arrived: the repair job must not count it twice."""
    gate = (await checkpoints(client, auth, LION))[0]
    sid, headers = await start(client)
    count = runtime.live.record_checkin

    async def reply_lost(*args, **kwargs):
        await count(*args, **kwargs)
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.live, "record_checkin", reply_lost)
        await check_in(client, sid, headers, token=token_of(gate), expect=201)
    night = night_of(datetime.now(UTC))
    assert (await runtime.live.night_counters(night))[LION]["checkins"] == 1
    assert await repair_uncounted(runtime, force=True, grace_s=0) == 0
    assert (await runtime.live.night_counters(night))[LION]["checkins"] == 1
    assert await db_count(runtime, Checkin.counted.is_(False)) == 0


async def test_repair_does_not_bring_back_the_counters_of_expired_nights(
    client, auth, runtime, monkeypatch
) -> None:
    """Rows left uncounted by a long outage: nights whose Redis counters have expired are flagged only."""
    gate = (await checkpoints(client, auth, LION))[0]

    ids = []
    with monkeypatch.context() as patch:
        patch.setattr(runtime.live, "record_checkin", redis_down)
        for _ in range(2):
            sid, headers = await start(client)
            ids.append((await check_in(client, sid, headers, token=token_of(gate), expect=201)).json()["id"])
    tonight = night_of(datetime.now(UTC))
    kept, expired = tonight - timedelta(days=2), tonight - timedelta(days=3)  # counters live 3 days
    async with runtime.sessionmaker() as session:
        for record_id, night in zip(ids, (kept, expired)):
            await session.execute(update(Checkin).where(Checkin.id == record_id).values(night=night))
        await session.commit()
    assert await repair_uncounted(runtime, force=True, grace_s=0) == 1
    assert (await runtime.live.night_counters(kept))[LION]["checkins"] == 1
    assert await runtime.live.night_counters(expired) == {}
    assert await db_count(runtime, Checkin.counted.is_(False)) == 0


async def test_repair_waits_out_redis_and_works_through_several_batches(
    client, auth, runtime, monkeypatch
) -> None:
    gate = (await checkpoints(client, auth, LION))[0]

    with monkeypatch.context() as patch:
        patch.setattr(runtime.live, "record_checkin", redis_down)
        for _ in range(3):
            sid, headers = await start(client)
            await check_in(client, sid, headers, token=token_of(gate), expect=201)
    with monkeypatch.context() as patch:
        patch.setattr(runtime.live, "counted_checkins", redis_down)
        assert await repair_uncounted(runtime, force=True, grace_s=0) == 0
    assert (
        await db_count(runtime, Checkin.counted.is_(False)) == 3
    )  # nothing flagged that Redis did not count
    assert await repair_uncounted(runtime, force=True, grace_s=0, batch=2) == 3
    assert await db_count(runtime, Checkin.counted.is_(False)) == 0
    night = night_of(datetime.now(UTC))
    assert (await runtime.live.night_counters(night))[LION]["checkins"] == 3


async def test_manual_code_during_redis_outage_is_a_retryable_503(client, auth, runtime, monkeypatch) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)

    monkeypatch.setattr(ratelimit.FixedWindowLimiter, "acquire", redis_down)
    response = await check_in(client, sid, headers, manual_code=gate["manual_code"])
    problem(response, 503, "live-state-unavailable")
    assert response.headers["retry-after"]
    assert await db_count(runtime) == 0


async def test_rebuild_restores_counters_after_redis_is_flushed(client, auth, runtime) -> None:
    nets = await checkpoints(client, auth, NETS)
    lion = (await checkpoints(client, auth, LION))[0]
    install = f"install-{uuid.uuid4()}"
    sid_a, headers_a = await start(client, install=install)
    sid_b, headers_b = await start(client, install=install)  # the same phone, a second session
    sid_c, headers_c = await start(client)
    for sid, headers, cps in (
        (sid_a, headers_a, [nets[0], nets[1], lion]),
        (sid_b, headers_b, [nets[0]]),
        (sid_c, headers_c, [nets[0], lion]),
    ):
        for cp in cps:
            await check_in(client, sid, headers, token=token_of(cp), expect=201)
    night = night_of(datetime.now(UTC))
    before = await runtime.live.night_counters(night)
    expected = {NETS: (4, 2), LION: (2, 2)}  # (check-ins, unique phones), computed by hand
    for poi, (n, unique) in expected.items():
        assert (before[poi]["checkins"], before[poi]["unique"]) == (n, unique)
    # A snapshot written earlier tonight remembers ping-derived entries that only Redis had.
    start_of_night = datetime.combine(night, datetime.min.time(), TZ).replace(hour=12)
    async with runtime.sessionmaker() as session:
        session.add_all(
            [
                OccupancySnapshot(
                    poi_id=LION,
                    bucket=start_of_night + timedelta(hours=1),
                    occupancy=3,
                    entries_tonight=5,
                    checkins_tonight=0,
                    unique_tonight=5,
                    capacity=100,
                ),
                OccupancySnapshot(
                    poi_id=LION,
                    bucket=start_of_night + timedelta(hours=2),
                    occupancy=4,
                    entries_tonight=7,
                    checkins_tonight=0,
                    unique_tonight=6,
                    capacity=100,
                ),
                OccupancySnapshot(
                    poi_id=LION,
                    bucket=start_of_night - timedelta(hours=1),
                    occupancy=9,
                    entries_tonight=99,
                    checkins_tonight=0,
                    unique_tonight=9,
                    capacity=100,
                ),
            ]
        )
        await session.commit()
    await flush_namespace(runtime)
    assert await runtime.live.night_counters(night) == {}
    report = await rebuild_night(runtime, night)
    assert report["checkins"] == 6
    after = await runtime.live.night_counters(night)
    for poi, (n, unique) in expected.items():
        assert (after[poi]["checkins"], after[poi]["unique"]) == (n, unique)
    assert after[LION]["entries"] == 7  # the latest snapshot of this night, not last night's 99
    assert await checkpoint_counter(runtime, night, NETS, nets[0]["id"]) == 3
    # Running it again changes nothing.
    await rebuild_night(runtime, night)
    assert await runtime.live.night_counters(night) == after


async def test_a_rebuild_and_live_counting_meet_without_double_counts(
    client, auth, runtime, monkeypatch
) -> None:
    """A rebuild recounts each shard in parts; requests and the repair job keep counting in between. A
    record counted by both must be counted once, whichever comes first."""
    nets = await checkpoints(client, auth, NETS)
    lion = (await checkpoints(client, auth, LION))[0]
    sid, headers = await start(client)
    for cp in (nets[0], nets[1], lion):
        await check_in(client, sid, headers, token=token_of(cp), expect=201)
    night = night_of(datetime.now(UTC))
    before = await runtime.live.night_counters(night)
    await flush_namespace(runtime)
    async with runtime.sessionmaker() as session:
        rows = (await session.execute(select(Checkin).where(Checkin.session_id == sid))).scalars().all()
    recount = runtime.live._recount_part
    answers = []

    async def live_counts_between_parts(shard, night_, records, clear):
        counted = await recount(shard, night_, records, clear)
        if clear and records:  # right after the session's shard was emptied, the live path counts its records
            for row in rows:
                answers.append(
                    await runtime.live.record_checkin(
                        row.id,
                        sid,
                        row.visitor,
                        row.poi_id,
                        str(row.checkpoint_id),
                        row.scanned_at.timestamp(),
                        night,
                        False,
                        0,
                    )
                )
        return counted

    monkeypatch.setattr("tourapi.live.store.RECOUNT_BATCH", 1)
    monkeypatch.setattr(runtime.live, "_recount_part", live_counts_between_parts)
    report = await rebuild_night(runtime, night)
    assert report["checkins"] == 3
    assert sorted(a.name for a in answers) == ["ALREADY_COUNTED", "COUNTED", "COUNTED"]
    after = await runtime.live.night_counters(night)
    assert after[NETS]["checkins"] == before[NETS]["checkins"] == 2
    assert after[LION]["checkins"] == before[LION]["checkins"] == 1
    assert after[NETS]["unique"] == after[LION]["unique"] == 1
    for cp in nets[:2]:
        assert await checkpoint_counter(runtime, night, NETS, cp["id"]) == 1


async def test_a_check_in_stored_while_a_rebuild_runs_is_counted(client, auth, runtime, monkeypatch) -> None:
    """Stored and counted by its request after the rebuild read the database but before it emptied the
    shard: the rebuild's second read finds it."""
    nets = await checkpoints(client, auth, NETS)
    sid, headers = await start(client)
    await check_in(client, sid, headers, token=token_of(nets[0]), expect=201)
    night = night_of(datetime.now(UTC))
    rebuild = runtime.live.rebuild_night

    async def check_in_after_the_read(*args, **kwargs):
        await check_in(client, sid, headers, token=token_of(nets[1]), expect=201)
        assert (await runtime.live.night_counters(night))[NETS]["checkins"] == 2  # counted by the request
        return await rebuild(*args, **kwargs)  # empties the shard; its records are the first read's only

    monkeypatch.setattr(runtime.live, "rebuild_night", check_in_after_the_read)
    report = await rebuild_night(runtime, night)
    assert report["checkins"] == 2
    assert (await runtime.live.night_counters(night))[NETS]["checkins"] == 2
    for cp in nets[:2]:
        assert await checkpoint_counter(runtime, night, NETS, cp["id"]) == 1
    assert await db_count(runtime, Checkin.counted.is_(False)) == 0


async def test_a_check_in_the_rebuild_counted_first_still_places_the_visitor_inside(
    client, auth, runtime, monkeypatch
) -> None:
    """A rebuild can read and count a record between its commit and its request's own count: the request
    then counts nothing, but the visitor who just scanned is still inside the venue."""
    nets = await checkpoints(client, auth, NETS)
    sid, headers = await start(client)
    night = night_of(datetime.now(UTC))
    count = checkin_services.count_checkin

    async def rebuild_first(live, record, dwell, fresh):
        await rebuild_night(runtime, night)
        assert (await runtime.live.night_counters(night))[NETS]["checkins"] == 1
        result = await count(live, record, dwell, fresh)
        assert result is CheckinCount.ALREADY_COUNTED
        return result

    monkeypatch.setattr(checkin_services, "count_checkin", rebuild_first)
    await check_in(client, sid, headers, token=token_of(nets[0]), expect=201)
    assert await runtime.live.poi_occupancy(NETS) == 1
    assert (await runtime.live.night_counters(night))[NETS]["checkins"] == 1


async def test_live_rebuild_command(client, auth, runtime, settings, backend) -> None:
    gate = (await checkpoints(client, auth, NETS))[0]
    sid, headers = await start(client)
    await check_in(client, sid, headers, token=token_of(gate), expect=201)
    night = night_of(datetime.now(UTC))
    await flush_namespace(runtime)
    env = settings_env(settings)
    if backend == "embedded":
        result = await asyncio.to_thread(CliRunner().invoke, main, ["live", "rebuild"], env=env)
        assert result.exit_code != 0 and "shared Redis" in result.output
        return
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["live", "rebuild", "--night", night.isoformat()], env=env
    )
    assert result.exit_code == 0, result.output
    assert f"night {night.isoformat()}: 1 check-ins recounted" in result.output
    counters = (await runtime.live.night_counters(night))[NETS]
    assert counters["checkins"] == 1 and counters["unique"] == 1
    # Default night: tonight.
    await flush_namespace(runtime)
    result = await asyncio.to_thread(CliRunner().invoke, main, ["live", "rebuild"], env=env)
    assert result.exit_code == 0 and f"night {night.isoformat()}" in result.output
    assert (await runtime.live.night_counters(night))[NETS]["checkins"] == 1


# ---- route progress ------------------------------------------------------------------------------------------


class StopsDirectory:
    def __init__(self, stops: dict[str, list[str]]) -> None:
        self.stops = stops

    def stop_pois(self, route_id: str) -> list[str] | None:
        return self.stops.get(route_id)

    def route_ids(self) -> list[str]:
        return sorted(self.stops)

    async def validate_for_session(self, session, route_id, night, default_end):
        return default_end


async def test_checkins_drive_route_progress(client, auth, runtime) -> None:
    runtime.routes = StopsDirectory({"test-route": [NETS, LION]})
    sid, headers = await start(client, route_id="test-route")
    nets = (await checkpoints(client, auth, NETS))[0]
    lion = (await checkpoints(client, auth, LION))[0]
    first = (await check_in(client, sid, headers, token=token_of(nets), expect=201)).json()
    assert first["route"] == {
        "route_id": "test-route",
        "visited": [NETS],
        "next_stop": LION,
        "completed": False,
    }
    # A late upload (not "inside now") still counts for progress: the record is what matters.
    done = (
        await check_in(
            client,
            sid,
            headers,
            token=token_of(lion),
            expect=201,
            scanned_at=(datetime.now(TZ) - timedelta(hours=1)).isoformat(),
        )
    ).json()
    assert done["route"] == {
        "route_id": "test-route",
        "visited": [NETS, LION],
        "next_stop": None,
        "completed": True,
    }
    async with runtime.sessionmaker() as session:
        assert {r.route_id for r in (await session.scalars(select(Checkin))).all()} == {"test-route"}


# ---- schema --------------------------------------------------------------------------------------------------


async def test_checkin_tables_match_their_migration(settings, backend) -> None:
    if backend != "postgis":
        pytest.skip("the embedded schema comes from the models themselves")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from geoalchemy2 import alembic_helpers
    from sqlalchemy.ext.asyncio import create_async_engine

    from tourapi.db.base import Base

    def include(obj, name, kind, reflected, compare_to):
        table = obj if kind == "table" else getattr(obj, "table", None)
        if table is not None and getattr(table, "name", None) not in ("checkpoints", "checkins"):
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
