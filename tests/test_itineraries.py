"""POST /v1/itineraries/plan: personal night itineraries. Runs on both backends.

Every plan is checked against facts computed here from the fixture files (opening hours, show and
boat times of the published routes, walking times), not by calling the planner's own code. Nights:
Saturday 2026-07-18 (summer evening openings, every route runs) and New Year's Eve 2026-12-31.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from test_sessions import ping, send, start

from tourapi.db.models import OccupancySnapshot
from tourapi.geo.crs import wgs84_to_gcj02
from tourapi.geo.geometry import haversine_m
from tourapi.settings import DEFAULT_FIXTURES
from tourapi.timeutil import TZ, parse_schedule

POIS = {
    f["properties"]["id"]: f for f in json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())["features"]
}
ROUTES = json.loads((DEFAULT_FIXTURES / "routes.json").read_text())["routes"]
PLAN = "/v1/itineraries/plan"
GUANQIAN = (120.623252, 31.313505)  # Guanqian Street, WGS-84
NETS = "master-of-the-nets-garden"
KMH = {"slow": 3.0, "normal": 4.5, "fast": 5.5}
SATURDAY = "2026-07-18"


@pytest.fixture(autouse=True)
def no_time_cap(monkeypatch) -> None:
    """Plans are fixed by the seed and the iteration count; the 0.25 s wall-clock cap is a safety net
    that a busy test machine could trip (test_time_cap_is_reported covers it), so lift it here."""
    from tourapi.domain.itineraries import planner

    monkeypatch.setattr(planner, "TIME_CAP_S", 60.0)


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "start": {"lon": GUANQIAN[0], "lat": GUANQIAN[1]},
        "start_time": f"{SATURDAY}T19:40:00+08:00",
        "budget_minutes": 120,
        "interests": {"garden": 1},
    }
    body.update(overrides)
    return body


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def expand(event: dict[str, Any]) -> set[str]:
    """The clock times of a route event (fixed times, or start..end every n minutes)."""
    times = set(event.get("times") or [])
    if event.get("every_minutes"):

        def minutes(hhmm: str) -> int:  # since noon, so that 00:30 comes after 23:30
            h, m = map(int, hhmm.split(":"))
            return ((h - 12) % 24) * 60 + m

        for m in range(minutes(event["start"]), minutes(event["end"]) + 1, event["every_minutes"]):
            clock = (m + 12 * 60) % (24 * 60)
            times.add(f"{clock // 60:02d}:{clock % 60:02d}")
    return times


def show_times(poi: str) -> set[str]:
    return {
        t
        for r in ROUTES
        if r["status"] == "published"
        for s in r["stops"]
        if s["poi_id"] == poi
        for e in s.get("events", [])
        if e.get("kind", "performance") == "performance"
        for t in expand(e)
    }


def boat_lines() -> dict[str, tuple[str, int, int, set[str]]]:
    """pier -> (landing POI, boarding minutes, cruise minutes, departure clock times)."""
    lines = {}
    for r in ROUTES:
        if r["status"] != "published":
            continue
        for i, leg in enumerate(r["legs"]):
            if leg["mode"] == "boat":
                stop = r["stops"][i]
                times = {t for e in stop.get("events", []) if e.get("kind") == "boat" for t in expand(e)}
                lines[stop["poi_id"]] = (
                    r["stops"][i + 1]["poi_id"],
                    stop["dwell_minutes"],
                    leg["duration_minutes"],
                    times,
                )
    return lines


def walk_seconds(a: tuple[float, float], b: tuple[float, float], pace: str = "normal") -> int:
    metres = haversine_m(a[0], a[1], b[0], b[1]) * 1.3
    return math.floor(metres * 3.6 / KMH[pace] + 0.5)


def point_of(poi: str) -> tuple[float, float]:
    lon, lat = POIS[poi]["geometry"]["coordinates"]
    return lon, lat


def open_throughout(poi: str, a: datetime, b: datetime) -> bool:
    hours = POIS[poi]["properties"]["opening_hours"]
    if not hours:
        return True
    schedule = parse_schedule(hours)
    if not schedule.is_open(a):
        return False
    return all(span.open for span in schedule.intervals(a, b)) if b > a else True


def check_itinerary(body: dict[str, Any], req: dict[str, Any]) -> None:
    """Invariants every plan must satisfy, checked against the fixture facts."""
    stops, legs = body["stops"], body["legs"]
    pace = req.get("pace", "normal")
    t0 = when(req["start_time"])
    deadline = when(req["end_time"]) if "end_time" in req else t0 + timedelta(minutes=req["budget_minutes"])
    assert stops[0]["kind"] == "start" and when(stops[0]["departure"]) == t0
    assert len(legs) == len(stops) - 1
    assert when(body["end"]) == when(stops[-1]["departure"]) <= deadline
    assert body["totals"]["duration_s"] == (when(body["end"]) - t0).total_seconds()
    points = {"start": (req["start"]["lon"], req["start"]["lat"])}
    if "end" in req:
        points["end"] = (req["end"]["lon"], req["end"]["lat"])
    lines = boat_lines()
    for i, leg in enumerate(legs):
        a, b = stops[i], stops[i + 1]
        assert when(leg["departure"]) == when(a["departure"])
        assert when(leg["arrival"]) == when(b["arrival"])
        assert (when(leg["arrival"]) - when(leg["departure"])).total_seconds() == leg["duration_s"]
        if leg["mode"] == "walk":
            here = point_of(a["poi_id"]) if a["poi_id"] else points[a["kind"]]
            there = point_of(b["poi_id"]) if b["poi_id"] else points[b["kind"]]
            assert leg["duration_s"] == walk_seconds(here, there, pace)
        else:
            assert leg["mode"] == "boat" and leg["fixed_duration"]
            dest, boarding, cruise, times = lines[a["poi_id"]]
            assert b["poi_id"] == dest and leg["duration_s"] == cruise * 60
            assert a["event"]["kind"] == "boat" and when(a["event"]["start"]) == when(a["departure"])
            assert when(a["event"]["start"]).astimezone(TZ).strftime("%H:%M") in times
            assert when(a["event"]["start"]) - when(a["visit_start"]) >= timedelta(minutes=boarding)
    total = 0.0
    for stop in stops:
        assert when(stop["arrival"]) <= when(stop["visit_start"]) <= when(stop["departure"])
        assert stop["wait_s"] == (when(stop["visit_start"]) - when(stop["arrival"])).total_seconds()
        if stop["kind"] in ("start", "end", "landing"):
            continue
        total += stop["score"]
        poi = stop["poi_id"]
        assert poi not in req.get("exclude", [])
        # every visit starts, and runs, inside the venue's opening hours
        assert open_throughout(poi, when(stop["visit_start"]), when(stop["departure"])), stop
        event = stop["event"]
        if event and event["kind"] == "performance":
            start_at = when(event["start"])
            assert start_at.astimezone(TZ).strftime("%H:%M") in show_times(poi)
            assert when(stop["visit_start"]) <= start_at and when(event["end"]) <= when(stop["departure"])
    assert body["score"] == pytest.approx(total, abs=1e-3)


async def plan(client, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    req = request(**overrides)
    response = await client.post(PLAN, json=req)
    assert response.status_code == 200, response.text
    body = response.json()
    check_itinerary(body, req)
    return body, req


def venues(body: dict[str, Any]) -> list[str]:
    return [s["poi_id"] for s in body["stops"] if s["kind"] in ("visit", "show", "boat")]


# ---- plans --------------------------------------------------------------------------------------------------


async def test_anonymous_plan_has_the_route_schedule_shape(client) -> None:
    body, _ = await plan(client)
    assert venues(body) == [NETS]  # the only garden that can be reached and enjoyed by 21:40
    nets = body["stops"][1]
    for key in (
        "index",
        "poi_id",
        "name",
        "point",
        "arrival",
        "visit_start",
        "departure",
        "wait_s",
        "dwell_s",
        "event",
        "events_during_visit",
        "reasons",
        "score",
        "crowd",
        "kind",
    ):
        assert key in nets
    for key in (
        "index",
        "mode",
        "from",
        "to",
        "distance_m",
        "distance_source",
        "duration_s",
        "departure",
        "arrival",
    ):
        assert key in body["legs"][0]
    assert nets["event"]["kind"] == "performance"  # the evening garden performance plays during the visit
    assert {r["code"] for r in nets["reasons"]} >= {"interest", "event", "crowd"}
    assert body["night"] == SATURDAY and body["pace"] == "normal" and body["timezone"] == "Asia/Shanghai"
    assert body["candidates_considered"] >= 1 and body["solver"]["name"] == "pyvrp"
    assert body["steered_away"] == [] and body["warnings"] == []


async def test_a_long_night_with_every_interest_respects_budget_hours_and_events(client) -> None:
    body, _ = await plan(client, start_time=f"{SATURDAY}T18:00:00+08:00", budget_minutes=240, interests={})
    assert len(venues(body)) >= 3
    assert body["candidates_considered"] <= 60
    assert body["candidates"]["dropped_by_cap"] >= 0


async def test_a_boat_ride_is_a_timed_departure_with_a_fixed_leg(client) -> None:
    pier = "pingjiang-road-boat-pier"
    body, _ = await plan(
        client,
        start={"lon": point_of(pier)[0], "lat": point_of(pier)[1]},
        start_time=f"{SATURDAY}T19:30:00+08:00",
        budget_minutes=90,
        interests={"pier": 1, "historic_street": 1},
    )
    boat = next(s for s in body["stops"] if s["kind"] == "boat")
    assert boat["poi_id"] == pier
    leg = body["legs"][boat["index"]]
    assert leg["mode"] == "boat" and leg["to"] == "pingjiang-road"
    _, boarding, _, _ = boat_lines()[pier]
    # the visitor is at the pier (boarding) before the boat leaves
    assert when(boat["event"]["start"]) - when(boat["arrival"]) >= timedelta(minutes=boarding)


async def test_pace_changes_walking_times(client) -> None:
    slow, _ = await plan(client, pace="slow", budget_minutes=150)
    fast, _ = await plan(client, pace="fast", budget_minutes=150)
    assert slow["walking_speed_kmh"] == 3.0 and fast["walking_speed_kmh"] == 5.5
    assert slow["legs"][0]["duration_s"] > fast["legs"][0]["duration_s"]


async def test_must_include_is_visited(client) -> None:
    teahouse = "pipayu-pingtan-teahouse"  # a performance venue: not a garden, so not chosen on its own
    free, _ = await plan(client, budget_minutes=200)
    assert teahouse not in venues(free)
    body, _ = await plan(client, budget_minutes=200, must_include=[teahouse])
    assert teahouse in venues(body)
    stop = next(s for s in body["stops"] if s["poi_id"] == teahouse)
    assert stop["must_include"] and any(r["code"] == "must_include" for r in stop["reasons"])


async def test_a_venue_with_two_openings_in_the_window_is_visited_once(client) -> None:
    # 16:30-22:00: the Master of the Nets is open 16:30-17:30 and again 19:30-22:00
    body, _ = await plan(
        client, start_time=f"{SATURDAY}T16:30:00+08:00", budget_minutes=330, must_include=[NETS]
    )
    assert venues(body).count(NETS) == 1


async def test_exclude_is_honoured(client) -> None:
    first, _ = await plan(client, budget_minutes=240, interests={})
    chosen = sorted(set(venues(first)))
    second, _ = await plan(client, budget_minutes=240, interests={}, exclude=chosen)
    assert not set(venues(second)) & set(chosen)
    assert venues(second)


async def test_end_place_is_reached_before_the_end_time(client) -> None:
    hotel = (120.6185, 31.3190)  # a hotel north of Guanqian Street
    end_time = f"{SATURDAY}T22:15:00+08:00"
    req = request(end={"lon": hotel[0], "lat": hotel[1]}, end_time=end_time)
    req.pop("budget_minutes")
    response = await client.post(PLAN, json=req)
    assert response.status_code == 200, response.text
    body = response.json()
    check_itinerary(body, req)
    last, leg = body["stops"][-1], body["legs"][-1]
    assert last["kind"] == "end" and last["point"] == [hotel[0], hotel[1]]
    assert when(leg["arrival"]) == when(last["arrival"]) <= when(end_time)
    previous = body["stops"][-2]
    assert leg["duration_s"] == walk_seconds(point_of(previous["poi_id"]), hotel)


async def test_gcj02_start_gives_the_same_plan_and_points_can_come_back_in_gcj02(client) -> None:
    wgs, _ = await plan(client)
    lon, lat = wgs84_to_gcj02(*GUANQIAN)
    req = request(start={"lon": lon, "lat": lat, "crs": "gcj02"}, crs="gcj02")
    response = await client.post(PLAN, json=req)
    assert response.status_code == 200, response.text
    gcj = response.json()
    assert venues(gcj) == venues(wgs)
    assert [s["arrival"] for s in gcj["stops"]] == [s["arrival"] for s in wgs["stops"]]
    assert gcj["crs"] == "gcj02"
    assert gcj["stops"][0]["point"] == pytest.approx([lon, lat], abs=1e-7)
    assert gcj["stops"][1]["point"] == pytest.approx(list(wgs84_to_gcj02(*point_of(NETS))), abs=1e-9)


async def test_new_years_eve_past_midnight(client) -> None:
    hanshan = "hanshan-temple"  # open 20:00-24:00 on Dec 31 and 00:00-01:00 on Jan 1
    req = request(
        start={"lon": 120.5660, "lat": 31.3130},
        start_time="2026-12-31T23:10:00+08:00",
        end_time="2027-01-01T01:30:00+08:00",
        interests={"temple": 1},
    )
    req.pop("budget_minutes")
    response = await client.post(PLAN, json=req)
    assert response.status_code == 200, response.text
    body = response.json()
    check_itinerary(body, req)
    stop = next(s for s in body["stops"] if s["poi_id"] == hanshan)
    assert body["night"] == "2026-12-31"
    assert when(stop["departure"]) > datetime(2027, 1, 1, tzinfo=TZ)  # the visit runs past midnight
    assert when(stop["departure"]) <= datetime(2027, 1, 1, 1, 0, tzinfo=TZ)


async def test_same_request_same_answer(client) -> None:
    req = request(start_time=f"{SATURDAY}T18:00:00+08:00", budget_minutes=240, interests={})
    first = await client.post(PLAN, json=req)
    second = await client.post(PLAN, json=req)
    assert first.status_code == second.status_code == 200
    assert first.json()["solver"]["stopped_by"] == "iterations"
    assert first.content == second.content
    assert first.headers["server-timing"].startswith("solver;dur=")


async def test_time_cap_is_reported(client, monkeypatch) -> None:
    from tourapi.domain.itineraries import planner

    # An iteration budget no machine finishes in 0.1 s: the cap fires and the best plan so far is used.
    monkeypatch.setattr(planner, "MAX_ITERATIONS", 10**9)
    monkeypatch.setattr(planner, "TIME_CAP_S", 0.1)
    body, _ = await plan(client, start_time=f"{SATURDAY}T18:00:00+08:00", budget_minutes=240, interests={})
    assert body["solver"]["stopped_by"] == "time"
    assert any(w["code"] == "solver_time_cap" for w in body["warnings"])
    assert venues(body)  # still a checked, feasible plan


async def test_no_plan_before_the_time_cap_is_a_retryable_503(client, monkeypatch) -> None:
    from tourapi.domain.itineraries import planner
    from tourapi.itineraries.solver import SolverTimeout

    def overloaded(*args: Any, **kwargs: Any) -> None:
        raise SolverTimeout("no feasible route after 0 iterations")

    monkeypatch.setattr(planner, "solve_pyvrp", overloaded)
    response = await client.post(PLAN, json=request())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "urn:tourapi:problem:planner-busy"


# ---- crowds -------------------------------------------------------------------------------------------------


def inside(poi: str) -> tuple[float, float]:
    point = shapely.geometry.shape(POIS[poi]["properties"]["geofence"]).representative_point()
    return point.x, point.y


async def fill_live(client, auth, poi: str, capacity: int, visitors: int) -> None:
    patched = await client.patch(f"/v1/pois/{poi}", json={"capacity": capacity}, headers=await auth("admin"))
    assert patched.status_code == 200, patched.text
    for _ in range(visitors):
        sid, headers = await start(client)
        result = await send(client, sid, headers, [ping(inside(poi), 5)])
        assert poi in result["inside"]


def at_saturday(monkeypatch, hhmm: str) -> None:
    """Plan against the live state as if it were that Saturday evening now."""
    from tourapi.domain.itineraries import crowd

    h, m = map(int, hhmm.split(":"))
    moment = datetime(2026, 7, 18, h, m, tzinfo=TZ).timestamp()
    monkeypatch.setattr(crowd, "clock", lambda: moment)


async def test_a_full_venue_is_avoided_and_reported(client, auth, monkeypatch) -> None:
    at_saturday(monkeypatch, "19:40")
    await fill_live(client, auth, NETS, capacity=2, visitors=2)  # 2/2: full now
    body, _ = await plan(client, interests={"garden": 1, "performance_venue": 1})
    assert NETS not in venues(body)
    steered = [s for s in body["steered_away"] if s["poi_id"] == NETS]
    assert steered and steered[0]["expected_level"] == "full" and steered[0]["action"] == "excluded"
    assert not steered[0]["chosen"]
    # Without avoid_crowds the planner only reports: the full garden is chosen, with a warning.
    body, _ = await plan(client, avoid_crowds=False)
    assert venues(body) == [NETS] and body["steered_away"] == []
    warning = next(w for w in body["warnings"] if w["code"] == "crowded_at_arrival")
    assert body["stops"][warning["stop"]]["poi_id"] == NETS and "full" in warning["message"]
    assert body["stops"][1]["crowd"]["expected_level"] == "full"


async def test_live_state_does_not_apply_to_another_night(client, auth, monkeypatch) -> None:
    at_saturday(monkeypatch, "19:40")
    await fill_live(client, auth, NETS, capacity=2, visitors=2)
    body, _ = await plan(client, start_time="2026-07-25T19:40:00+08:00")  # a week later
    assert venues(body) == [NETS] and body["steered_away"] == []


async def test_a_must_include_venue_that_is_full_is_kept_with_a_warning(client, auth, monkeypatch) -> None:
    at_saturday(monkeypatch, "19:40")
    await fill_live(client, auth, NETS, capacity=2, visitors=2)
    body, _ = await plan(client, must_include=[NETS])
    assert NETS in venues(body)
    assert any(w["code"] == "crowded_at_arrival" and "you asked" in w["message"] for w in body["warnings"])


async def snapshots(
    runtime, poi: str, occupancy: int, capacity: int, weeks: range, hhmm: tuple[str, str]
) -> None:
    """Five-minute snapshot rows on the Saturdays before 2026-07-18, between the two local times."""
    rows = []
    for k in weeks:
        day = datetime(2026, 7, 18, tzinfo=TZ) - timedelta(days=7 * k)
        h0, m0 = map(int, hhmm[0].split(":"))
        h1, m1 = map(int, hhmm[1].split(":"))
        t = day.replace(hour=h0, minute=m0)
        while t <= day.replace(hour=h1, minute=m1):
            rows.append(
                OccupancySnapshot(
                    poi_id=poi,
                    bucket=t.astimezone(UTC),
                    occupancy=occupancy,
                    entries_tonight=occupancy,
                    checkins_tonight=0,
                    unique_tonight=occupancy,
                    capacity=capacity,
                )
            )
            t += timedelta(minutes=5)
    async with runtime.sessionmaker() as session:
        session.add_all(rows)
        await session.commit()


async def test_usually_full_on_saturday_nights_is_avoided(client, runtime) -> None:
    capacity = POIS[NETS]["properties"]["capacity"]
    await snapshots(runtime, NETS, capacity, capacity, range(1, 5), ("19:30", "22:00"))
    body, _ = await plan(client)
    assert NETS not in venues(body)
    steered = next(s for s in body["steered_away"] if s["poi_id"] == NETS)
    assert (steered["expected_level"], steered["action"]) == ("full", "excluded")


async def test_full_early_in_the_evening_is_visited_later(client, runtime) -> None:
    # Full on the last four Saturdays until 20:14:59, quiet after: the planner waits for the quiet.
    capacity = POIS[NETS]["properties"]["capacity"]
    await snapshots(runtime, NETS, capacity, capacity, range(1, 5), ("19:30", "20:10"))
    body, _ = await plan(client, budget_minutes=180)
    assert venues(body) == [NETS]
    stop = body["stops"][1]
    assert when(stop["visit_start"]) >= datetime(2026, 7, 18, 20, 15, tzinfo=TZ)
    assert stop["crowd"]["expected_level"] != "full"
    steered = next(s for s in body["steered_away"] if s["poi_id"] == NETS)
    assert (steered["expected_level"], steered["action"], steered["chosen"]) == ("full", "excluded", True)
    assert when(steered["until"]) == datetime(2026, 7, 18, 20, 14, 59, tzinfo=TZ)
    assert any(r["code"] == "crowd_avoided" for r in stop["reasons"])
    # Without avoid_crowds the garden is visited as soon as possible, full or not.
    plain, _ = await plan(client, budget_minutes=180, avoid_crowds=False)
    assert when(plain["stops"][1]["visit_start"]) < datetime(2026, 7, 18, 20, 15, tzinfo=TZ)


async def test_when_everything_within_reach_is_full_the_answer_is_422(client, auth, monkeypatch) -> None:
    at_saturday(monkeypatch, "19:40")
    await fill_live(client, auth, NETS, capacity=2, visitors=2)
    req = request(exclude=["humble-administrators-garden"])  # the other garden with evening shows
    response = await client.post(PLAN, json=req)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "avoid_crowds" and "forecast full" in response.json()["detail"]
    body, _ = await plan(client, exclude=["humble-administrators-garden"], avoid_crowds=False)
    assert venues(body) == [NETS]


async def test_usually_crowded_is_penalised_not_excluded(client, runtime) -> None:
    base, _ = await plan(client)
    capacity = POIS[NETS]["properties"]["capacity"]
    # 92 % of capacity two Saturdays out of four, 92 % the other two: crowded on average
    await snapshots(runtime, NETS, math.ceil(0.92 * capacity), capacity, range(1, 5), ("19:30", "22:00"))
    body, _ = await plan(client)
    steered = next(s for s in body["steered_away"] if s["poi_id"] == NETS)
    assert (steered["expected_level"], steered["action"]) == ("crowded", "penalised")
    assert venues(body) == [NETS] and steered["chosen"]  # still the best garden, at half the score
    assert body["score"] == pytest.approx(base["score"] / 2, abs=1e-3)
    assert any(r["code"] == "crowd_penalty" for r in body["stops"][1]["reasons"])
    assert any(w["code"] == "crowded_at_arrival" for w in body["warnings"])


async def test_quiet_history_on_other_weekdays_does_not_count(client, runtime) -> None:
    capacity = POIS[NETS]["properties"]["capacity"]
    rows = []
    # full on the Friday, Thursday and Wednesday before: not the same night of the week
    for days in (1, 2, 3):
        t = datetime(2026, 7, 18, 20, 0, tzinfo=TZ) - timedelta(days=days)
        rows.append(
            OccupancySnapshot(
                poi_id=NETS,
                bucket=t.astimezone(UTC),
                occupancy=capacity,
                entries_tonight=capacity,
                checkins_tonight=0,
                unique_tonight=capacity,
                capacity=capacity,
            )
        )
    async with runtime.sessionmaker() as session:
        session.add_all(rows)
        await session.commit()
    body, _ = await plan(client)
    assert venues(body) == [NETS] and body["steered_away"] == []


# ---- impossible requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "needle"),
    [
        ({"budget_minutes": 0}, "budget_minutes", "at least 1 minute"),
        ({"budget_minutes": -30}, "budget_minutes", "at least 1 minute"),
        ({"budget_minutes": 13 * 60}, "budget_minutes", "at most 720"),
        ({"end_time": f"{SATURDAY}T21:00:00+08:00"}, "budget_minutes", "not both"),
        ({"budget_minutes": None}, "budget_minutes", "give end_time or budget_minutes"),
        ({"budget_minutes": None, "end_time": f"{SATURDAY}T19:00:00+08:00"}, "end_time", "after start_time"),
        ({"budget_minutes": None, "end_time": f"{SATURDAY}T19:40:00+08:00"}, "end_time", "after start_time"),
        ({"start": {"lon": 200, "lat": 31.3}}, "start.lon", "-180..180"),
        ({"start": {"lon": 120.6, "lat": 95}}, "start.lat", "-90..90"),
        ({"end": {"lon": 120.6, "lat": -91}}, "end.lat", "-90..90"),
        ({"interests": {"dragons": 1}}, "interests.dragons", "unknown category"),
        ({"interests": {"garden": -1}}, "interests.garden", "0..10"),
        ({"lang": "xx-nope"}, "lang", "unknown locale"),
        ({"start_time": "1890-07-18T19:40:00+08:00"}, "start_time", "between 2000 and 2100"),
        ({"must_include": ["no-such-venue"]}, "must_include[0]", "not a known POI"),
        (
            {"must_include": [NETS], "exclude": [NETS]},
            "must_include[0]",
            "both in must_include and in exclude",
        ),
        ({"must_include": ["lion-grove-garden"]}, "must_include[0]", "is closed between 19:40 and 21:40"),
        (
            {"must_include": ["tiger-hill"]},
            "must_include[0]",
            "open only 19:40-21:00 in that time, too short",
        ),
        ({"must_include": ["canglang-pavilion"]}, "must_include[0]", "has to start by 19:45"),
        (
            {"interests": {"museum": 1}, "start_time": f"{SATURDAY}T22:00:00+08:00"},
            "interests",
            "nothing that matches your interests (museum) is open",
        ),
        ({"end": {"lon": 120.45, "lat": 31.30}, "budget_minutes": 30}, "end", "longer than the 30 min"),
        ({"budget_minutes": 10}, "budget_minutes", "nothing can be visited between 19:40 and 19:50"),
        (
            {"budget_minutes": 25, "interests": {"city_gate": 1}},
            "budget_minutes",
            "no open venue can be reached",
        ),
    ],
)
async def test_impossible_requests_are_422_with_the_field(client, overrides, field, needle) -> None:
    req = request(**overrides)
    req = {k: v for k, v in req.items() if v is not None}
    response = await client.post(PLAN, json=req)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["field"] == field
    assert needle in problem["detail"], problem["detail"]


async def test_a_closed_city_is_422_not_an_empty_plan(client) -> None:
    # 03:00-05:00: only Changmen Gate (24/7) is open; without it nothing is.
    req = request(start_time="2026-07-19T03:00:00+08:00", interests={}, exclude=["changmen-gate"])
    response = await client.post(PLAN, json=req)
    assert response.status_code == 422
    assert response.json()["detail"] == "nothing is open between 03:00 and 05:00"
    assert response.json()["field"] == "start_time"


async def test_a_removed_must_include_venue_is_422(client, auth) -> None:
    assert (
        await client.delete("/v1/pois/pipayu-pingtan-teahouse", headers=await auth("admin"))
    ).status_code == 204
    response = await client.post(PLAN, json=request(must_include=["pipayu-pingtan-teahouse"]))
    assert response.status_code == 422
    assert response.json()["field"] == "must_include[0]" and "removed" in response.json()["detail"]


async def test_must_include_venues_that_cannot_fit_together(client) -> None:
    # Each fits on its own, but the teahouse closes and the garden's last entry passes while walking between.
    response = await client.post(
        PLAN, json=request(must_include=[NETS, "pipayu-pingtan-teahouse"], budget_minutes=200)
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "must_include"
    assert "cannot all be visited" in response.json()["detail"]


async def test_body_shape_errors(client) -> None:
    assert (await client.post(PLAN, json={**request(), "pace": "sprint"})).status_code == 422
    assert (await client.post(PLAN, json={**request(), "surprise": 1})).status_code == 422
    assert (
        await client.post(PLAN, content=b"{not json", headers={"content-type": "application/json"})
    ).status_code == 400
