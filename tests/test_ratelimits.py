"""Rate limits on pings, session creation and login (check-ins and manual codes: test_checkins.py).

Limits live in Redis, so they hold across workers; exceeding one answers 429 problem+json with
Retry-After.
"""

from __future__ import annotations

import uuid

from test_sessions import CENTRE, ping, start
from tourapi.web.ratelimit import LIMITS, PINGS_PER_MIN


def assert_429(response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["retry-after"]) <= 600
    assert response.json()["type"] == "urn:tourapi:problem:rate-limited"


async def test_pings_are_limited_per_session(client) -> None:
    sid, headers = await start(client)
    batch = {"pings": [ping((CENTRE.x, CENTRE.y), 30)] * 100}
    allowed = PINGS_PER_MIN["session"] // 100
    statuses = [(await client.post(f"/v1/sessions/{sid}/pings", json=batch, headers=headers)).status_code
                for _ in range(allowed)]
    if statuses[-1] == 429:  # the minute turned over in the middle: the window restarted
        return
    assert statuses == [200] * allowed
    assert_429(await client.post(f"/v1/sessions/{sid}/pings", json=batch, headers=headers))


async def test_sessions_are_limited_per_install(client) -> None:
    install = f"install-{uuid.uuid4()}"
    per_install = next(limit.limit for limit in LIMITS["session-start"] if limit.scope == "install")
    for _ in range(per_install):
        assert (await client.post("/v1/sessions", json={"install_id": install})).status_code == 201
    assert_429(await client.post("/v1/sessions", json={"install_id": install}))
    # Another install from the same address is not affected.
    assert (await client.post("/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}"})).status_code == 201


async def test_failed_logins_are_limited_per_user(client) -> None:
    per_user = next(limit.limit for limit in LIMITS["login"] if limit.scope == "user")
    for _ in range(per_user):
        failed = await client.post("/v1/auth/token", json={"username": "operator", "password": "guess-guess-1"})
        assert failed.status_code == 401
    assert_429(await client.post("/v1/auth/token", json={"username": "operator", "password": "guess-guess-2"}))


async def test_successful_logins_do_not_use_up_the_limit(client, auth) -> None:
    from conftest import SECRET
    from tourapi.bootstrap import demo_password

    for _ in range(15):
        ok = await client.post("/v1/auth/token",
                               json={"username": "admin", "password": demo_password(SECRET, "admin")})
        assert ok.status_code == 200
