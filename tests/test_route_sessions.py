"""Sessions on night routes: the routes feature's RouteDirectory behind POST /v1/sessions, route
progress in pings and check-ins, and per-route counts in the live summary. Both backends.

Sessions start "now", so the HTTP tests first give a fixture route a schedule that runs every
night; the night-dependent rules (seasons, weekdays, holidays) are checked on fixed nights
against the directory itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import shapely
from test_checkins import POIS, check_in, checkpoints, start, token_of

from tourapi.domain.sessions.services import night_end
from tourapi.runtime import Runtime
from tourapi.timeutil import TZ, night_of

ROUTE = "late-night-snack-walk"  # no events, so any schedule passes validation
STOPS = [
    "shiquan-street",
    "fenghuang-street",
    "shilu-food-street",
    "gucheng-zhidian-observation-deck",
    "changmen-gate",
]
DRAFT = "canglang-floating-life"
EVERY_NIGHT = "Mo-Su 18:00-23:00"


def coming_night(moment: datetime, grace_h: int) -> date:
    """The night a session started at ``moment`` belongs to (as POST /v1/sessions decides)."""
    night = night_of(moment)
    return night + timedelta(days=1) if night_end(night) + timedelta(hours=grace_h) <= moment else night


async def set_schedule(client, auth, route_id: str, schedule: str) -> None:
    response = await client.patch(
        f"/v1/routes/{route_id}", json={"schedule": schedule}, headers=await auth("operator")
    )
    assert response.status_code == 200, response.text


async def start_on(client, route_id: str):
    return await client.post(
        "/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}", "locale": "en", "route_id": route_id}
    )


def inside(poi: str) -> dict:
    point = shapely.geometry.shape(POIS[poi]["properties"]["geofence"]).representative_point()
    moment = datetime.now(UTC) - timedelta(seconds=5)
    return {
        "lon": point.x,
        "lat": point.y,
        "accuracy": 5.0,
        "timestamp": moment.replace(microsecond=moment.microsecond // 1000 * 1000).isoformat(),
    }


async def test_session_on_a_fixture_route_reports_progress_and_counts(client, auth, runtime) -> None:
    await set_schedule(client, auth, ROUTE, EVERY_NIGHT)
    before = time.time()
    response = await start_on(client, ROUTE)
    assert response.status_code == 201, response.text
    started = response.json()

    # The session lasts until the slowest visitor starting at 23:00 is done, plus the grace period.
    grace = runtime.settings.session_grace_after_night_h
    night = coming_night(datetime.fromtimestamp(before, UTC), grace)
    schedule = (
        await client.get(
            f"/v1/routes/{ROUTE}/schedule",
            params={"date": night.isoformat(), "start": "23:00", "pace": "slow"},
        )
    ).json()
    finish = min(datetime.fromisoformat(schedule["end"]), night_end(night)) + timedelta(hours=grace)
    expected = max(finish.timestamp(), before + runtime.settings.session_idle_s)
    assert abs(datetime.fromisoformat(started["ends_at"]).timestamp() - expected) < 5, (
        started,
        schedule["end"],
    )

    sid, headers = started["session_id"], {"Authorization": f"Bearer {started['token']}"}
    pinged = await client.post(
        f"/v1/sessions/{sid}/pings", json={"pings": [inside(STOPS[0])]}, headers=headers
    )
    assert pinged.status_code == 200, pinged.text
    assert pinged.json()["inside"] == [STOPS[0]]
    assert pinged.json()["route"] == {
        "route_id": ROUTE,
        "visited": [STOPS[0]],
        "next_stop": STOPS[1],
        "completed": False,
    }

    # A check-in at the second stop counts too, and keeps the geofence visit.
    poster = (await checkpoints(client, auth, STOPS[1]))[0]
    checked = (await check_in(client, sid, headers, token=token_of(poster), expect=201)).json()
    assert checked["route"] == {
        "route_id": ROUTE,
        "visited": STOPS[:2],
        "next_stop": STOPS[2],
        "completed": False,
    }

    await start(client)  # a session without a route counts in the total only
    summary = (await client.get("/v1/live/summary", headers=await auth("operator"))).json()
    by_route = summary["active_sessions"]["by_route"]
    assert summary["active_sessions"]["total"] == 2
    assert by_route[ROUTE] == 1
    assert DRAFT not in by_route and sum(by_route.values()) == 1
    listed = (await client.get("/v1/routes", params={"limit": 100})).json()["routes"]
    assert sorted(by_route) == sorted(r["id"] for r in listed)  # every published route, zeros included

    # Ending the session takes it out of the per-route count.
    assert (await client.delete(f"/v1/sessions/{sid}", headers=headers)).status_code == 204
    summary = (await client.get("/v1/live/summary", headers=await auth("operator"))).json()
    assert summary["active_sessions"]["by_route"][ROUTE] == 0


async def test_draft_unknown_and_non_running_routes_are_refused(client, auth, runtime) -> None:
    for route_id in (DRAFT, "no-such-route"):
        response = await start_on(client, route_id)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "route_id" and route_id in response.json()["detail"]

    # Tonight is one of two nights (a session in the morning is for the coming night): avoid both.
    grace = runtime.settings.session_grace_after_night_h
    night = coming_night(datetime.now(UTC), grace)
    other_day = (night + timedelta(days=3)).strftime("%a")[:2]
    await set_schedule(client, auth, ROUTE, f"{other_day} 19:00-22:00")
    response = await start_on(client, ROUTE)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "route_id" and body["type"].endswith(":route-not-running")
    assert f"date={night.isoformat()}" in body["detail"]

    # Withdrawn (back to draft) or deleted: refused too.
    await set_schedule(client, auth, ROUTE, EVERY_NIGHT)
    assert (await start_on(client, ROUTE)).status_code == 201
    operator = await auth("operator")
    assert (
        await client.patch(f"/v1/routes/{ROUTE}", json={"status": "draft"}, headers=operator)
    ).status_code == 200
    assert (await start_on(client, ROUTE)).json()["field"] == "route_id"
    assert ROUTE not in runtime.routes.route_ids()
    assert runtime.routes.stop_pois(ROUTE) == STOPS  # sessions already on it keep their progress


async def test_directory_on_fixed_nights(client, runtime) -> None:
    """Seasons, weekdays and holidays decide; the end is the slow finish after the last start window."""
    directory = runtime.routes
    late = datetime(2030, 1, 1, tzinfo=TZ)  # no cap
    async with runtime.sessionmaker() as session:
        # May-Oct Fr,Sa,PH 21:30-00:30: Friday 3 July 2026 runs, the Thursday before does not.
        friday = date(2026, 7, 3)
        ends = await directory.validate_for_session(session, ROUTE, friday, late)
        slow = (
            await client.get(
                f"/v1/routes/{ROUTE}/schedule",
                params={"date": friday.isoformat(), "start": "00:30", "pace": "slow"},
            )
        ).json()
        assert ends == datetime.fromisoformat(slow["end"]) and ends > datetime(2026, 7, 4, 0, 30, tzinfo=TZ)
        refused = []
        for night in (date(2026, 7, 2), date(2026, 12, 3)):  # a Thursday; a winter Thursday
            try:
                await directory.validate_for_session(session, ROUTE, night, late)
            except Exception as exc:  # noqa: BLE001  (the problem is checked below)
                refused.append((getattr(exc, "field", None), getattr(exc, "slug", None)))
        assert refused == [("route_id", "route-not-running")] * 2
        # National Day (Thursday 1 October 2026) is a public holiday: PH runs.
        assert await directory.validate_for_session(session, ROUTE, date(2026, 10, 1), late) > datetime(
            2026, 10, 2, 0, 30, tzinfo=TZ
        )
        # Never later than a session without a route would last.
        cap = datetime(2026, 7, 4, 1, 0, tzinfo=TZ)
        assert await directory.validate_for_session(session, ROUTE, friday, cap) == cap


async def test_every_worker_sees_route_changes_within_a_second(client, auth, runtime, settings) -> None:
    other = Runtime.create(settings)  # a second worker on the same database
    await other.start()
    try:
        assert DRAFT not in other.routes.route_ids() and ROUTE in other.routes.route_ids()
        operator = await auth("operator")
        response = await client.patch(f"/v1/routes/{DRAFT}", json={"status": "published"}, headers=operator)
        assert response.status_code == 200, response.text
        assert DRAFT in runtime.routes.route_ids()  # the writing worker: at once
        began = time.monotonic()
        while DRAFT not in other.routes.route_ids():
            assert time.monotonic() - began < 2.5, "the other worker did not pick up the change"
            await asyncio.sleep(0.05)
        assert other.routes.stop_pois(DRAFT) == ["canglang-pavilion", "master-of-the-nets-garden"]
        assert (await client.delete(f"/v1/routes/{DRAFT}", headers=operator)).status_code == 204
        began = time.monotonic()
        while DRAFT in other.routes.route_ids():
            assert time.monotonic() - began < 2.5
            await asyncio.sleep(0.05)
    finally:
        await other.stop()
