"""Timed itineraries: the pure engine, and /v1/routes/{id}/schedule on both backends.

Expected times are worked out here from the fixture files (path lengths with an independent
haversine, the documented paces), not read back from the code under test.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import date, datetime, timedelta, timezone

import pytest

from tourapi.domain.routes.schedule import (
    EventSpec,
    LegSpec,
    StopSpec,
    at_night,
    build_itinerary,
    travel_seconds,
)
from tourapi.settings import DEFAULT_FIXTURES

CST = timezone(timedelta(hours=8))
ROUTES = {r["id"]: r for r in json.loads((DEFAULT_FIXTURES / "routes.json").read_text())["routes"]}
POIS = {
    f["properties"]["id"]: f for f in json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())["features"]
}
KMH = {"slow": 3.0, "normal": 4.5, "fast": 5.5}
R = 6371008.7714  # the sphere PostGIS uses for geography without spheroid


def great_circle(a: list[float], b: list[float]) -> float:
    la1, la2 = math.radians(a[1]), math.radians(b[1])
    dla, dlo = la2 - la1, math.radians(b[0] - a[0])
    h = math.sin(dla / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dlo / 2) ** 2
    return 2 * R * math.asin(math.sqrt(h))


def leg_m(route_id: str, i: int) -> float:
    coords = ROUTES[route_id]["legs"][i]["path"]["coordinates"]
    return sum(great_circle(a, b) for a, b in itertools.pairwise(coords))


def walk_s(metres: float, pace: str = "normal") -> int:
    return math.floor(metres / (KMH[pace] * 1000 / 3600) + 0.5)


def t(day: str, hhmm: str, plus_s: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=CST) + timedelta(seconds=plus_s)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def codes(body: dict) -> list[tuple[str, int | None]]:
    return [(w["code"], w["stop"]) for w in body["warnings"]]


# ---- the pure engine -----------------------------------------------------------------------------------


def test_documented_paces_and_detour_factor() -> None:
    assert travel_seconds("walk", 4500, "normal") == 3600
    assert travel_seconds("walk", 3000, "slow") == 3600
    assert travel_seconds("walk", 5500, "fast") == 3600
    assert travel_seconds("walk", 1000, "fast", fixed_s=60) == 60
    assert travel_seconds("shuttle", 18000) == 3600
    a = StopSpec("a", "A", 120.62, 31.30, 0)
    b = StopSpec("b", "B", 120.63, 31.30, 0)
    night = date(2026, 7, 18)
    plan = build_itinerary(night=night, stops=[a, b], legs=[LegSpec()], start=t("2026-07-18", "20:00"))
    straight = great_circle([120.62, 31.30], [120.63, 31.30])
    assert plan.legs[0].distance_source == "great_circle"
    assert math.isclose(plan.legs[0].distance_m, straight * 1.3, rel_tol=1e-9)
    assert plan.stops[1].arrival == t("2026-07-18", "20:00", walk_s(straight * 1.3))


def test_times_before_noon_belong_to_the_next_day() -> None:
    night = date(2026, 12, 31)
    assert at_night(night, "23:30") == t("2026-12-31", "23:30")
    assert at_night(night, "00:30") == t("2027-01-01", "00:30")
    series = EventSpec("x", start="23:30", end="00:30", every_minutes=30)
    assert series.clock_times() == ["23:30", "00:00", "00:30"]
    assert series.occurrences(night)[-1] == t("2027-01-01", "00:30")


def _stops(events: tuple[EventSpec, ...], dwell: int = 30) -> list[StopSpec]:
    return [
        StopSpec("start", "Start", 120.6000, 31.3000, 10),
        StopSpec("stage", "Stage", 120.6010, 31.3000, dwell, events=events),
        StopSpec("end", "End", 120.6020, 31.3000, 10),
    ]


def test_waits_for_the_next_performance_and_stays_until_it_ends() -> None:
    show = EventSpec("Kunqu", times=("19:30", "20:30"), duration_minutes=45)
    legs = [LegSpec(duration_s=300), LegSpec(duration_s=300)]
    night = date(2026, 7, 18)
    on_time = build_itinerary(night=night, stops=_stops((show,)), legs=legs, start=t("2026-07-18", "19:00"))
    stage = on_time.stops[1]
    assert stage.arrival == t("2026-07-18", "19:15")
    assert stage.visit_start == t("2026-07-18", "19:30") and stage.wait_s == 15 * 60
    assert stage.departure == t("2026-07-18", "20:15"), "the 45 min show outlasts the 30 min dwell"
    assert on_time.warnings == []
    # Starting 20 min later misses the 19:30 show the plan catches: wait for 20:30.
    late = build_itinerary(night=night, stops=_stops((show,)), legs=legs, start=t("2026-07-18", "19:20"))
    assert late.stops[1].visit_start == t("2026-07-18", "20:30")
    assert [w.code for w in late.warnings] == ["event_missed"]
    # After the last show: no wait, a warning, the visit goes on.
    last = build_itinerary(night=night, stops=_stops((show,)), legs=legs, start=t("2026-07-18", "20:30"))
    assert last.stops[1].visit_start == last.stops[1].arrival == t("2026-07-18", "20:45")
    assert [w.code for w in last.warnings] == ["no_event_left"]
    assert last.complete, "a missed performance does not break the itinerary"


def test_boat_leaves_on_its_departures_after_the_boarding_time() -> None:
    boats = EventSpec("Boat", kind="boat", start="19:00", end="20:00", every_minutes=20)
    stops = [
        StopSpec("start", "Start", 120.6000, 31.3000, 10),
        StopSpec("pier", "Pier", 120.6010, 31.3000, 5, events=(boats,)),
        StopSpec("far", "Far", 120.6200, 31.3200, 10),
    ]
    legs = [LegSpec(duration_s=600), LegSpec(mode="boat", duration_s=1800)]
    night = date(2026, 7, 18)
    # Arrive 19:16, ready 19:21: the 19:20 boat is gone, take 19:40.
    run = build_itinerary(night=night, stops=stops, legs=legs, start=t("2026-07-18", "18:56"))
    pier = run.stops[1]
    assert pier.arrival == t("2026-07-18", "19:16")
    assert pier.departure == t("2026-07-18", "19:40") and pier.visit_start == t("2026-07-18", "19:35")
    assert run.stops[2].arrival == t("2026-07-18", "20:10")
    assert run.legs[1].fixed and run.legs[1].duration_s == 1800
    # Ready after the last boat: no boat left, the itinerary is not complete.
    stranded = build_itinerary(night=night, stops=stops, legs=legs, start=t("2026-07-18", "19:50"))
    assert [w.code for w in stranded.warnings] == ["no_event_left"]
    assert not stranded.complete


def test_opening_hours_warnings() -> None:
    stops = [
        StopSpec("a", "Closed early", 120.6000, 31.3000, 60, opening_hours="Mo-Su 09:00-20:30"),
        StopSpec("b", "Shut", 120.6010, 31.3000, 10, opening_hours="Mo-Su 09:00-17:00"),
    ]
    run = build_itinerary(
        night=date(2026, 7, 18), stops=stops, legs=[LegSpec(duration_s=60)], start=t("2026-07-18", "20:00")
    )
    assert [(w.code, w.stop) for w in run.warnings] == [
        ("finishes_after_close", 0),
        ("poi_closed_at_arrival", 1),
    ]


# ---- the API, both backends ------------------------------------------------------------------------------


async def test_schedule_at_the_first_start_window(client) -> None:
    """Nets evening garden, Saturday 18 July 2026: start window 19:15-20:15, shows from 19:45 every 30 min."""
    day = "2026-07-18"
    response = await client.get("/v1/routes/nets-evening-garden/schedule", params={"date": day, "lang": "en"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("public")
    body = response.json()
    assert body["night"] == day and body["runs"] is True and body["pace"] == "normal"
    assert body["start_windows"] == [{"start": f"{day}T19:15:00+08:00", "end": f"{day}T20:15:00+08:00"}]
    leg0, leg1 = walk_s(leg_m("nets-evening-garden", 0)), walk_s(leg_m("nets-evening-garden", 1))
    shiquan, nets, fenghuang = body["stops"]
    assert shiquan["arrival"] == iso(t(day, "19:15")) and shiquan["departure"] == iso(t(day, "19:30"))
    assert nets["arrival"] == iso(t(day, "19:30", leg0))
    assert nets["visit_start"] == iso(t(day, "19:45")), "waits for the 19:45 performance"
    assert nets["event"]["start"] == iso(t(day, "19:45"))
    assert nets["departure"] == iso(t(day, "21:00"))  # 75 min dwell
    assert fenghuang["arrival"] == iso(t(day, "21:00", leg1))
    assert body["end"] == iso(t(day, "21:40", leg1))
    assert [leg["duration_s"] for leg in body["legs"]] == [leg0, leg1]
    assert body["legs"][1]["distance_m"] == pytest.approx(leg_m("nets-evening-garden", 1), abs=0.05)
    assert body["totals"]["walking_m"] == pytest.approx(
        leg_m("nets-evening-garden", 0) + leg_m("nets-evening-garden", 1), abs=0.1
    )
    assert body["totals"]["duration_s"] == 2 * 3600 + 25 * 60 + leg1  # 19:15 -> 21:40, plus the walk
    assert body["warnings"] == []
    assert all(s["name"] for s in body["stops"]) and body["stops"][1]["name"] == "Master of the Nets Garden"


@pytest.mark.parametrize("pace", ["slow", "normal", "fast"])
async def test_each_pace_and_the_missed_boat(client, pace: str) -> None:
    """Panmen, Saturday 18 July 2026, 18:30: 40 min at Panmen, walk to the pier, 10 min boarding,
    cruises every 30 min 18:30-20:30 (45 min to Changmen). At the slow pace the planned 19:30 boat is gone."""
    day = "2026-07-18"
    body = (
        await client.get("/v1/routes/panmen-grand-canal-cruise/schedule", params={"date": day, "pace": pace})
    ).json()
    walk = walk_s(leg_m("panmen-grand-canal-cruise", 0), pace)
    at_pier = t(day, "19:10", walk)
    ready = at_pier + timedelta(minutes=10)
    boat = min(d for d in (t(day, f"{h}:{m}") for h in (18, 19, 20) for m in ("00", "30")) if d >= ready)
    pier = body["stops"][1]
    assert pier["arrival"] == iso(at_pier)
    assert pier["departure"] == iso(boat) and pier["event"]["kind"] == "boat"
    assert pier["visit_start"] == iso(boat - timedelta(minutes=10))
    assert body["stops"][2]["arrival"] == iso(boat + timedelta(minutes=45))
    last_walk = walk_s(leg_m("panmen-grand-canal-cruise", 2), pace)
    assert body["end"] == iso(boat + timedelta(minutes=45 + 15 + 40, seconds=last_walk))
    assert body["walking_speed_kmh"] == KMH[pace]
    if pace == "slow":
        assert boat == t(day, "20:00")
        assert codes(body) == [("event_missed", 1)]
        assert "19:30" in body["warnings"][0]["message"]
    else:
        assert boat == t(day, "19:30") and body["warnings"] == []


async def test_paces_order_the_arrivals(client) -> None:
    arrivals = {}
    for pace in ("slow", "normal", "fast"):
        body = (
            await client.get(
                "/v1/routes/late-night-snack-walk/schedule", params={"date": "2026-07-18", "pace": pace}
            )
        ).json()
        arrivals[pace] = datetime.fromisoformat(body["stops"][-1]["arrival"])
    assert arrivals["fast"] < arrivals["normal"] < arrivals["slow"]


async def test_across_midnight(client) -> None:
    """Late-night snack walk, night of Saturday 18 July 2026, starting 23:30: it ends on Sunday morning."""
    day, nxt = "2026-07-18", "2026-07-19"
    body = (
        await client.get("/v1/routes/late-night-snack-walk/schedule", params={"date": day, "start": "23:30"})
    ).json()
    leg0 = walk_s(leg_m("late-night-snack-walk", 0))
    assert body["start"] == iso(t(day, "23:30"))
    shiquan, fenghuang, shilu, _deck, _ = body["stops"]
    assert shiquan["departure"] == iso(t(nxt, "00:10"))
    assert fenghuang["arrival"] == iso(t(nxt, "00:10", leg0))
    assert shilu["arrival"] == iso(t(nxt, "00:10", leg0 + 45 * 60 + 20 * 60)), "20 min shuttle"
    assert body["legs"][1]["mode"] == "shuttle" and body["legs"][1]["duration_s"] == 1200
    # Shilu closes at 02:00, before the 40 min visit ends; the deck is closed when we get there.
    assert codes(body) == [("finishes_after_close", 2), ("poi_closed_at_arrival", 3)]
    assert body["end"].startswith(nxt) and body["end"].endswith("+08:00")


async def test_a_start_after_midnight_belongs_to_the_previous_night(client) -> None:
    body = (
        await client.get(
            "/v1/routes/late-night-snack-walk/schedule", params={"date": "2026-07-18", "start": "00:15"}
        )
    ).json()
    assert body["night"] == "2026-07-18" and body["start"] == "2026-07-19T00:15:00+08:00"
    assert body["runs"] is True and "start_outside_window" not in [c for c, _ in codes(body)]
    assert body["start_windows"] == [
        {"start": "2026-07-18T21:30:00+08:00", "end": "2026-07-19T00:30:00+08:00"}
    ]
    sunday = (
        await client.get(
            "/v1/routes/late-night-snack-walk/schedule", params={"date": "2026-07-19", "start": "00:15"}
        )
    ).json()
    assert sunday["start"] == "2026-07-20T00:15:00+08:00"
    assert ("route_not_running", None) in codes(sunday)


async def test_on_a_public_holiday(client) -> None:
    """The snack walk runs May-Oct on Fr, Sa and PH. 1 October 2026 is a Thursday and National Day."""
    holiday = (
        await client.get("/v1/routes/late-night-snack-walk/schedule", params={"date": "2026-10-01"})
    ).json()
    assert holiday["runs"] is True and holiday["start"] == "2026-10-01T21:30:00+08:00"
    assert not [c for c, _ in codes(holiday) if c == "route_not_running"]
    ordinary = (
        await client.get("/v1/routes/late-night-snack-walk/schedule", params={"date": "2026-10-08"})
    ).json()
    assert ordinary["runs"] is False and codes(ordinary)[0] == ("route_not_running", None)
    listed = (await client.get("/v1/routes", params={"date": "2026-10-01"})).json()
    snack = [r for r in listed["routes"] if r["id"] == "late-night-snack-walk"]
    assert snack and snack[0]["start_windows"] == [
        {"start": "2026-10-01T21:30:00+08:00", "end": "2026-10-02T00:30:00+08:00"}
    ]
    unlisted = (await client.get("/v1/routes", params={"date": "2026-10-08"})).json()
    assert "late-night-snack-walk" not in [r["id"] for r in unlisted["routes"]]


async def test_on_a_night_the_route_does_not_run(client) -> None:
    """The evening garden runs April-October; in December the garden closes at 17:00."""
    body = (await client.get("/v1/routes/nets-evening-garden/schedule", params={"date": "2026-12-05"})).json()
    assert body["runs"] is False and body["start_windows"] == []
    assert body["start"] == "2026-12-05T19:00:00+08:00", "documented default start"
    assert codes(body)[0] == ("route_not_running", None)
    assert ("poi_closed_at_arrival", 1) in codes(body)


async def test_late_start_misses_the_show_and_the_last_boat(client) -> None:
    body = (
        await client.get(
            "/v1/routes/shantang-boat-tiger-hill/schedule", params={"date": "2026-07-18", "start": "18:15"}
        )
    ).json()
    assert codes(body) == [
        ("event_missed", 2),  # the 18:45 Kunqu excerpt; the 19:45 one is taken
        ("no_event_left", 3),  # the last boat left at 20:00
        ("poi_closed_at_arrival", 4),  # Tiger Hill closes at 21:00
    ]
    assert body["stops"][2]["event"]["start"] == "2026-07-18T19:45:00+08:00"
    assert body["complete"] is False


async def test_schedule_is_deterministic_and_matches_the_engine(client) -> None:
    """The API's answer equals the pure engine fed straight from the fixture files: same on both backends."""
    params = {"date": "2026-07-18", "start": "18:40", "pace": "fast", "lang": "en"}
    first = (await client.get("/v1/routes/panmen-grand-canal-cruise/schedule", params=params)).json()
    second = (await client.get("/v1/routes/panmen-grand-canal-cruise/schedule", params=params)).json()
    assert first == second
    route = ROUTES["panmen-grand-canal-cruise"]
    stops = [
        StopSpec(
            s["poi_id"],
            POIS[s["poi_id"]]["properties"]["name"]["en"],
            *POIS[s["poi_id"]]["geometry"]["coordinates"],
            dwell_minutes=s["dwell_minutes"],
            opening_hours=POIS[s["poi_id"]]["properties"]["opening_hours"],
            events=tuple(
                EventSpec(
                    e["name"]["en"],
                    e.get("kind", "performance"),
                    tuple(e.get("times", ())),
                    e.get("start"),
                    e.get("end"),
                    e.get("every_minutes"),
                    e.get("duration_minutes", 0),
                )
                for e in s.get("events", [])
            ),
        )
        for s in route["stops"]
    ]
    legs = [
        LegSpec(
            leg["mode"],
            tuple(tuple(c) for c in leg["path"]["coordinates"]) if leg.get("path") else None,
            duration_s=leg["duration_minutes"] * 60 if leg.get("duration_minutes") else None,
        )
        for leg in route["legs"]
    ]
    expected = build_itinerary(
        night=date(2026, 7, 18),
        stops=stops,
        legs=legs,
        pace="fast",
        start=t("2026-07-18", "18:40"),
        route_schedule=route["schedule"],
    ).to_dict()
    assert {k: first[k] for k in expected} == expected


@pytest.mark.parametrize(
    "params,field",
    [
        ({"date": "2026-13-01"}, "date"),
        ({"date": "tonight"}, "date"),
        ({"date": "9999-12-31"}, "date"),
        ({"start": "25:00"}, "start"),
        ({"start": "7pm"}, "start"),
        ({"pace": "run"}, "query.pace"),
    ],
)
async def test_bad_schedule_parameters_are_named(client, params: dict, field: str) -> None:
    response = await client.get("/v1/routes/nets-evening-garden/schedule", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_draft_schedules_only_for_operators(client, auth) -> None:
    public = await client.get("/v1/routes/canglang-floating-life/schedule", params={"date": "2026-07-18"})
    assert public.status_code == 404
    preview = await client.get(
        "/v1/manage/routes/canglang-floating-life/schedule",
        params={"date": "2026-07-18"},
        headers=await auth("operator"),
    )
    assert preview.status_code == 200 and preview.headers["cache-control"] == "private, no-store"
    body = preview.json()
    # The visit starts with the 19:30 show and lasts the 85 min dwell (the show itself is 80 min).
    assert body["stops"][0]["event"]["start"] == "2026-07-18T19:30:00+08:00"
    assert body["stops"][0]["departure"] == "2026-07-18T20:55:00+08:00"  # 85 min dwell from 19:30
