"""`tourapi demo-traffic`: plans that follow the fixture routes, phone-like fixes, and a short evening
run against the app (both backends) that fills the hotspot, checks in and raises an alert."""

from __future__ import annotations

import json
import math
import random

import httpx
import pytest
from click.testing import CliRunner
from conftest import SECRET
from shapely.geometry import Point
from sqlalchemy import func, select

from tourapi.bootstrap import demo_password
from tourapi.cli import main as cli
from tourapi.db.models import Checkin
from tourapi.demo.traffic import (
    Clock,
    Demo,
    DemoConfig,
    Leg,
    Plan,
    Planner,
    build_world,
    gps_fix,
    metres,
    run_demo,
)
from tourapi.settings import DEFAULT_FIXTURES

POIS = json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())
ROUTES = json.loads((DEFAULT_FIXTURES / "routes.json").read_text())
HOTSPOT = "pingtan-museum"


@pytest.fixture
def settings(settings):
    # Sessions cannot start between 06:00 + session_grace_after_night_h and noon (Asia/Shanghai): the
    # night is over and the next has not begun (reported to the lead). These tests must pass at any hour.
    return settings.model_copy(update={"session_grace_after_night_h": 7})


def fixture_world(posters: bool = True):
    """The world as the simulator reads it from the API, made from the fixture files."""
    features = [
        {
            "id": f["properties"]["id"],
            "properties": {**f["properties"], "name": f["properties"]["name"]["en"]},
        }
        for f in POIS["features"]
    ]
    routes = {
        "routes": [{"id": r["id"], "poi_ids": [s["poi_id"] for s in r["stops"]]} for r in ROUTES["routes"]]
    }
    return build_world(
        {"features": features},
        routes,
        {f["id"]: ["https://posters.example/c/x"] for f in features} if posters else {},
    )


def test_route_plans_visit_the_stops_in_order_and_stay_inside() -> None:
    world = fixture_world()
    span = 5 * 3600.0
    planner = Planner(world, random.Random(5), span, None, checkins=True)
    plans = [planner.route_plan() for _ in range(40)]
    assert {p.route_id for p in plans} <= set(world.routes) and len({p.route_id for p in plans}) > 3
    for plan in plans:
        stays = [leg.venue for leg in plan.legs if leg.venue]
        visited = [v for n, v in enumerate(stays) if n == 0 or stays[n - 1] != v]
        assert visited == world.routes[plan.route_id]
        assert all(a.end == b.start for a, b in zip(plan.legs, plan.legs[1:]))  # no gaps in time
        for leg in plan.legs:
            for point in (leg.a, leg.b):
                inside = world.venues[leg.venue].fence.contains(Point(point)) if leg.venue else True
                assert inside
        assert not world.fences.contains(Point(plan.legs[0].a))  # arrives from outside every geofence
        assert not world.fences.contains(Point(plan.legs[-1].b))  # and leaves
        assert all(plan.arrive <= when < plan.leave and venue in stays for when, venue in plan.checkins)


def test_the_performance_fills_the_hotspot_and_no_more() -> None:
    world = fixture_world()
    span = 600.0
    planner = Planner(world, random.Random(1), span, "pipayu-pingtan-teahouse", checkins=False)
    plans = planner.plans(200)
    audience = [p for p in plans if p.kind == "audience"]
    capacity = world.venues["pipayu-pingtan-teahouse"].capacity
    assert len(audience) == math.ceil(capacity * 0.95)
    mid_show = sum(planner.show) / 2
    there = sum(
        1 for p in plans if p.position(mid_show)[1] == "pipayu-pingtan-teahouse" and p.arrive <= mid_show
    )
    assert 0.9 * capacity <= there <= 1.1 * capacity
    assert all(not p.checkins for p in plans)  # no posters known: pings only


def test_fixes_scatter_like_a_phone_reports() -> None:
    rng = random.Random(9)
    here = (120.6246, 31.3262)
    fixes = [gps_fix(rng, here, indoors=False) for _ in range(4000)]
    within = sum(1 for lon, lat, accuracy in fixes if metres(here, (lon, lat)) <= accuracy)
    assert 0.55 <= within / len(fixes) <= 0.8  # accuracy is the radius of 68% confidence
    poor = sum(1 for _, _, accuracy in fixes if accuracy > 50)
    assert 0.02 <= poor / len(fixes) <= 0.07  # a few poor fixes, which the server must not trust for exits
    assert all(3 <= accuracy <= 150 for _, _, accuracy in fixes)


async def test_a_short_evening_against_the_app(client, runtime, auth) -> None:
    admin, operator = await auth("admin"), await auth("operator")
    assert (
        await client.patch(f"/v1/pois/{HOTSPOT}", json={"capacity": 10}, headers=admin)
    ).status_code == 200
    await runtime.jobs.elect()
    lines: list[str] = []
    report = await run_demo(
        DemoConfig(
            visitors=24,
            speed=60,
            duration=8,
            hotspot=HOTSPOT,
            username="operator",
            password=demo_password(SECRET, "operator"),
            seed=4,
            report_every=2,
        ),
        client=client,
        say=lines.append,
    )
    assert report.errors == {} and report.sessions == 24
    assert report.pings_accepted == report.pings_sent > 24 * 5
    assert report.pings_rejected == 0  # real timestamps: never ahead of the server, never too old
    assert report.transitions["enter"] > 0 and report.transitions["exit"] > 0
    assert report.checkins_enabled and report.checkins > 0 and not report.checkin_refusals
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Checkin)) == report.checkins
    assert report.peak_inside[HOTSPOT] >= 8
    alerts = (await client.get("/v1/live/alerts", params={"status": "all"}, headers=operator)).json()
    assert HOTSPOT in {a["poi_id"] for a in alerts}  # raised by the server's own aggregator
    assert any("performance at Suzhou Pingtan Museum" in line for line in lines)
    assert any(line.startswith("[") and "check-ins" in line for line in lines)
    # Everyone has left: the sessions were ended.
    summary = (await client.get("/v1/live/summary", headers=operator)).json()
    assert summary["active_sessions"]["total"] == 0


def test_cli_reports_an_unreachable_server() -> None:
    result = CliRunner().invoke(
        cli, ["demo-traffic", "--base-url", "http://127.0.0.1:9", "--duration", "5", "--password", "x"]
    )
    assert result.exit_code == 1 and "cannot reach http://127.0.0.1:9" in result.output


async def test_a_burst_of_arrivals_is_paced_by_the_session_limit_not_lost() -> None:
    """All simulated phones share one address; the server's per-address limit on new sessions answers 429
    with Retry-After to a burst. The visitor waits as told and starts; nothing is counted as an error."""
    answers = iter([429, 429, 201])
    seen: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        seen.append(request.url.path)
        if status == 429:
            return httpx.Response(
                429, headers={"Retry-After": "0.2"}, json={"type": "urn:tourapi:problem:rate-limited"}
            )
        return httpx.Response(201, json={"session_id": "0-" + "a" * 20, "token": "t"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(server), base_url="http://demo.test") as http:
        demo = Demo(DemoConfig(), http, say=lambda line: None)
        here = (120.6246, 31.3262)
        plan = Plan(arrive=0, legs=[Leg(0, 3600, here, here, None)], route_id=None, kind="wander")
        started = await demo.start_session(plan, Clock(speed=1), span=3600)
    assert started == ("0-" + "a" * 20, {"Authorization": "Bearer t"})
    assert seen == ["/v1/sessions"] * 3
    assert demo.report.paced_starts == 2 and demo.report.errors == {} and demo.report.sessions == 1
