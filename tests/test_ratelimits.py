"""Rate limits on pings, session creation, login and itinerary plans, and the limiter itself for every
row of LIMITS (check-ins and manual codes over HTTP, and limits shared by workers: test_checkins.py).

Limits live in Redis, so they hold across workers; exceeding one answers 429 problem+json with
Retry-After.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import fakeredis
import httpx
import pytest
from test_sessions import CENTRE, ping, start

from tourapi.errors import TooManyRequests
from tourapi.web.ratelimit import LIMITS, PINGS_PER_MIN, FixedWindowLimiter, Limit

T = TypeVar("T")


def assert_429(response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["retry-after"]) <= 600
    assert response.json()["type"] == "urn:tourapi:problem:rate-limited"


async def within_one_minute(attempt: Callable[[], Awaitable[T]]) -> T:
    """Per-minute limits count in fixed one-minute windows (the server's clock is this process's): an
    attempt that straddles a minute boundary proves nothing, so it runs again."""
    for _ in range(3):
        minute = time.time() // 60
        result = await attempt()
        if time.time() // 60 == minute:
            return result
    pytest.fail("three attempts in a row straddled a minute boundary")


async def test_pings_are_limited_per_session(client) -> None:
    batch = {"pings": [ping((CENTRE.x, CENTRE.y), 30)] * 100}
    allowed = PINGS_PER_MIN["session"] // 100

    async def fill_then_one_more() -> tuple[list[int], httpx.Response]:
        sid, headers = await start(client)
        statuses = [
            (await client.post(f"/v1/sessions/{sid}/pings", json=batch, headers=headers)).status_code
            for _ in range(allowed)
        ]
        return statuses, await client.post(f"/v1/sessions/{sid}/pings", json=batch, headers=headers)

    statuses, one_more = await within_one_minute(fill_then_one_more)
    assert statuses == [200] * allowed
    assert_429(one_more)


async def test_sessions_are_limited_per_install(client) -> None:
    per_install = next(limit.limit for limit in LIMITS["session-start"] if limit.scope == "install")

    async def fill_then_one_more() -> tuple[list[int], httpx.Response]:
        install = f"install-{uuid.uuid4()}"
        statuses = [
            (await client.post("/v1/sessions", json={"install_id": install})).status_code
            for _ in range(per_install)
        ]
        return statuses, await client.post("/v1/sessions", json={"install_id": install})

    statuses, one_more = await within_one_minute(fill_then_one_more)
    assert statuses == [201] * per_install
    assert_429(one_more)
    # Another install from the same address is not affected.
    assert (
        await client.post("/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}"})
    ).status_code == 201


async def test_failed_logins_are_limited_per_user(client) -> None:
    per_user = next(limit.limit for limit in LIMITS["login"] if limit.scope == "user")
    for _ in range(per_user):
        failed = await client.post(
            "/v1/auth/token", json={"username": "operator", "password": "guess-guess-1"}
        )
        assert failed.status_code == 401
    assert_429(
        await client.post("/v1/auth/token", json={"username": "operator", "password": "guess-guess-2"})
    )


async def test_successful_logins_do_not_use_up_the_limit(client, auth) -> None:
    from conftest import SECRET

    from tourapi.bootstrap import demo_password

    for _ in range(15):
        ok = await client.post(
            "/v1/auth/token", json={"username": "admin", "password": demo_password(SECRET, "admin")}
        )
        assert ok.status_code == 200


async def test_failed_logins_are_limited_per_ip(app, monkeypatch) -> None:
    # A smaller table row keeps the test quick: every failed login costs an Argon2 verification.
    per_ip = 4
    monkeypatch.setitem(
        LIMITS,
        "login",
        tuple(Limit("ip", per_ip, 60) if limit.scope == "ip" else limit for limit in LIMITS["login"]),
    )
    addresses = iter(f"198.51.100.{n}" for n in range(1, 10))

    async def from_a_fresh_address() -> tuple[list[int], httpx.Response]:
        # A retry after a minute boundary must not inherit the counts of the attempt before it.
        transport = httpx.ASGITransport(app=app, client=(next(addresses), 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
            statuses = [  # a different user each time: only the address adds up
                (
                    await http.post(
                        "/v1/auth/token", json={"username": f"ghost-{n}", "password": "guess-guess-1"}
                    )
                ).status_code
                for n in range(per_ip)
            ]
            return statuses, await http.post(
                "/v1/auth/token", json={"username": "ghost-last", "password": "guess-guess-1"}
            )

    statuses, blocked = await within_one_minute(from_a_fresh_address)
    assert statuses == [401] * per_ip
    assert_429(blocked)
    assert "ip" in blocked.json()["detail"]


async def test_pings_are_limited_per_install_across_its_sessions(client) -> None:
    batch = {"pings": [ping((CENTRE.x, CENTRE.y), 30)] * 100}
    per_session = PINGS_PER_MIN["session"] // 100

    async def fill_then_a_fresh_session() -> tuple[list[int], httpx.Response]:
        install = f"install-{uuid.uuid4()}"
        statuses = []
        for _ in range(PINGS_PER_MIN["install"] // PINGS_PER_MIN["session"]):
            sid, headers = await start(client, install)
            statuses += [
                (await client.post(f"/v1/sessions/{sid}/pings", json=batch, headers=headers)).status_code
                for _ in range(per_session)
            ]
        sid, headers = await start(client, install)  # a fresh session of the same install
        return statuses, await client.post(f"/v1/sessions/{sid}/pings", json=batch, headers=headers)

    statuses, fresh = await within_one_minute(fill_then_a_fresh_session)
    assert set(statuses) == {200}
    assert_429(fresh)


async def test_itinerary_plans_are_limited_per_ip(client, monkeypatch) -> None:
    from tourapi.domain.itineraries.services import PlannerService

    async def no_solver(self, data, accept_language):  # the limit is under test, not the planner
        return {"stops": []}, 0.0

    monkeypatch.setattr(PlannerService, "plan", no_solver)
    per_ip = next(limit.limit for limit in LIMITS["plan"] if limit.scope == "ip")
    body = {
        "start": {"lon": 120.62, "lat": 31.31},
        "start_time": "2026-07-18T19:40:00+08:00",
        "budget_minutes": 60,
        "interests": {"garden": 1},
    }
    # The limit is per address and every request here comes from the same one, so a retry in the next
    # window would start half full: start early in a window instead.
    left = 60 - time.time() % 60
    if left < 20:
        await asyncio.sleep(left + 0.1)
    statuses = [(await client.post("/v1/itineraries/plan", json=body)).status_code for _ in range(per_ip)]
    assert statuses == [200] * per_ip
    assert_429(await client.post("/v1/itineraries/plan", json=body))


@pytest.mark.parametrize("name", sorted(LIMITS))
async def test_every_limit_in_the_table_holds_per_subject_and_window(name: str) -> None:
    """The limiter itself, for every row of LIMITS: exactly ``limit`` attempts per window and subject,
    then 429 with a Retry-After that ends with the window; other subjects and the next window are free."""
    redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    limiter = FixedWindowLimiter(redis, "t")
    try:
        for limit in LIMITS[name]:
            start = 1_800_000_000 - 1_800_000_000 % limit.window_s + 1  # one second into a window
            subject = {limit.scope: f"{limit.scope}-{uuid.uuid4()}"}
            for _ in range(limit.limit):
                await limiter.acquire(name, subject, start, "attempts")
            with pytest.raises(TooManyRequests) as refused:
                await limiter.acquire(name, subject, start + 0.5, "attempts")
            assert refused.value.headers["Retry-After"] == str(limit.window_s - 1)
            await limiter.acquire(name, {limit.scope: "someone-else"}, start, "attempts")
            await limiter.acquire(name, subject, start + limit.window_s, "attempts")  # the next window
    finally:
        await redis.aclose()


async def test_refunds_make_only_failures_count() -> None:
    redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    limiter = FixedWindowLimiter(redis, "t")
    user = {"user": "operator"}
    per_user = next(limit.limit for limit in LIMITS["login"] if limit.scope == "user")
    try:
        for _ in range(per_user * 3):  # successes, each refunded
            await limiter.refund(await limiter.acquire("login", user, 1_800_000_000, "logins"))
        for _ in range(per_user):
            await limiter.acquire("login", user, 1_800_000_000, "logins")
        with pytest.raises(TooManyRequests):
            await limiter.acquire("login", user, 1_800_000_000, "logins")
    finally:
        await redis.aclose()
