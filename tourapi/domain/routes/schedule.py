"""The timed itinerary of a night route. Pure: no database, no web framework.

Inputs are plain dataclasses (stops with their POI's opening hours and events,
legs with a distance or path and an optional fixed duration); the output is an
:class:`Itinerary`. The same inputs always give the same output, so the
schedule is identical on both storage backends. The itinerary planner reuses
:func:`build_itinerary` and :func:`travel_seconds`.

Rules
-----
* **Nights.** A night runs 12:00-12:00 Asia/Shanghai and is named by its first
  date. Event and start times are local ``HH:MM``; a time before 12:00 belongs
  to the next calendar day of the night, so ``00:30`` is after midnight.
* **Travel.** Walking uses the pace speed (:data:`PACE_KMH`: slow 3.0, normal
  4.5, fast 5.5 km/h) over the leg's path length, or, without a path, over the
  great-circle distance between the two stops times :data:`DETOUR_FACTOR`
  (1.3). A fixed leg duration always wins. Boat and shuttle legs normally have
  a fixed duration (boats must); otherwise :data:`BOAT_KMH` / :data:`SHUTTLE_KMH`.
  Durations are whole seconds, rounded half up.
* **Events.** A stop may hold fixed-time events (a list of times, or
  ``{start, end, every_minutes}``). At a stop whose next leg is a boat, the
  ``boat`` events are the departures: the visitor needs the stop's dwell
  (tickets, boarding) before the boat leaves, so the stop's departure is the
  first boat leaving at or after ``arrival + dwell``. At any other stop the
  visit starts with the first ``performance`` occurring at or after arrival
  (the visitor must arrive before it starts) and lasts the dwell, at least
  until the performance ends.
* **Warnings** (``code`` + English ``message``):
  ``route_not_running`` (no start window that night), ``start_outside_window``,
  ``poi_closed_at_arrival`` (closed when the visitor arrives, or when the
  awaited performance starts), ``finishes_after_close`` (the POI closes before
  the visit ends), ``event_missed`` (the first event after the route start was
  missed; the next one is taken) and ``no_event_left`` (nothing left that night:
  the visit goes on without it; for a boat the rest of the itinerary is timed
  as if the boat left at once and ``complete`` is false).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from tourapi.geo.geometry import haversine_m
from tourapi.timeutil import TZ, night_bounds, parse_schedule

Mode = Literal["walk", "boat", "shuttle"]
Pace = Literal["slow", "normal", "fast"]
EventKind = Literal["performance", "boat"]

MODES: tuple[str, ...] = ("walk", "boat", "shuttle")
PACES: tuple[str, ...] = ("slow", "normal", "fast")
PACE_KMH: dict[str, float] = {"slow": 3.0, "normal": 4.5, "fast": 5.5}
DETOUR_FACTOR = 1.3  # street distance / great-circle distance in the old town
BOAT_KMH = 5.0  # only for a boat leg without a fixed duration (routes always give one)
SHUTTLE_KMH = 18.0  # electric shuttle or taxi through the old town at night
DEFAULT_START = time(19, 0)  # when the route has no start window that night and no start is given


def travel_seconds(mode: str, distance_m: float, pace: str = "normal", fixed_s: float | None = None) -> int:
    """Seconds to cover ``distance_m`` by ``mode``; a fixed duration wins. Whole seconds, half up."""
    if fixed_s is not None:
        return math.floor(fixed_s + 0.5)
    if mode == "walk":
        kmh = PACE_KMH[pace]
    elif mode == "boat":
        kmh = BOAT_KMH
    elif mode == "shuttle":
        kmh = SHUTTLE_KMH
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return math.floor(distance_m * 3.6 / kmh + 0.5)


def path_length_m(coords: Sequence[Sequence[float]]) -> float:
    """Length of a lon/lat polyline on the sphere (the same model as every other distance here)."""
    return sum(haversine_m(a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(coords))


def parse_hhmm(value: str) -> tuple[int, int]:
    """``"19:30"`` -> (19, 30); ValueError otherwise (24:00 and beyond are not times of day)."""
    hh, sep, mm = value.partition(":")
    if not sep or len(hh) != 2 or len(mm) != 2 or not (hh.isdigit() and mm.isdigit()):
        raise ValueError(f"{value!r} is not a time HH:MM")
    h, m = int(hh), int(mm)
    if h > 23 or m > 59:
        raise ValueError(f"{value!r} is not a time of day (00:00-23:59)")
    return h, m


def at_night(night: date, hhmm: str) -> datetime:
    """The moment of local ``HH:MM`` during ``night``: before 12:00 means the next calendar day."""
    h, m = parse_hhmm(hhmm)
    day = night + timedelta(days=1) if h < 12 else night
    return datetime.combine(day, time(h, m), TZ)


def night_minutes(hhmm: str) -> int:
    """Minutes since the night began (12:00): orders times across midnight."""
    h, m = parse_hhmm(hhmm)
    return ((h - 12) % 24) * 60 + m


def iso(moment: datetime) -> str:
    return moment.astimezone(TZ).isoformat()


# ---- inputs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Fixed times (``times``) or a repeating series (``start``..``end`` every ``every_minutes``)."""

    name: str
    kind: EventKind = "performance"
    times: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None
    every_minutes: int | None = None
    duration_minutes: int = 0

    def clock_times(self) -> list[str]:
        """Every ``HH:MM`` of one night, in night order."""
        found = set(self.times)
        if self.start is not None and self.end is not None and self.every_minutes:
            first, last = night_minutes(self.start), night_minutes(self.end)
            for minute in range(first, last + 1, self.every_minutes):
                clock = (minute + 12 * 60) % (24 * 60)
                found.add(f"{clock // 60:02d}:{clock % 60:02d}")
        return sorted(found, key=night_minutes)

    def occurrences(self, night: date) -> list[datetime]:
        return [at_night(night, t) for t in self.clock_times()]


@dataclass(frozen=True, slots=True)
class StopSpec:
    poi_id: str
    name: str
    lon: float
    lat: float
    dwell_minutes: int
    opening_hours: str | None = None
    events: tuple[EventSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class LegSpec:
    """A leg to the next stop. Give ``path`` (lon/lat pairs) or ``distance_m``, or neither (great circle)."""

    mode: Mode = "walk"
    path: tuple[tuple[float, float], ...] | None = None
    distance_m: float | None = None
    duration_s: int | None = None


# ---- outputs ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Notice:
    code: str
    message: str
    stop: int | None = None
    leg: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "stop": self.stop, "leg": self.leg}


@dataclass(slots=True)
class Occurrence:
    name: str
    kind: str
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "start": iso(self.start), "end": iso(self.end)}


@dataclass(slots=True)
class TimedStop:
    index: int
    poi_id: str
    name: str
    lon: float
    lat: float
    arrival: datetime
    visit_start: datetime
    departure: datetime
    dwell_s: int
    wait_s: int
    event: Occurrence | None = None
    also_on: list[Occurrence] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "poi_id": self.poi_id,
            "name": self.name,
            "point": [self.lon, self.lat],
            "arrival": iso(self.arrival),
            "visit_start": iso(self.visit_start),
            "departure": iso(self.departure),
            "wait_s": self.wait_s,
            "dwell_s": self.dwell_s,
            "event": self.event.to_dict() if self.event else None,
            "events_during_visit": [o.to_dict() for o in self.also_on],
        }


@dataclass(slots=True)
class TimedLeg:
    index: int
    mode: str
    from_poi: str
    to_poi: str
    distance_m: float
    distance_source: str  # path | great_circle | given
    duration_s: int
    fixed: bool
    departure: datetime
    arrival: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "mode": self.mode,
            "from": self.from_poi,
            "to": self.to_poi,
            "distance_m": round(self.distance_m, 1),
            "distance_source": self.distance_source,
            "duration_s": self.duration_s,
            "fixed_duration": self.fixed,
            "departure": iso(self.departure),
            "arrival": iso(self.arrival),
        }


@dataclass(slots=True)
class Itinerary:
    night: date
    pace: str
    start: datetime
    end: datetime
    windows: list[tuple[datetime, datetime]]
    stops: list[TimedStop]
    legs: list[TimedLeg]
    warnings: list[Notice]
    complete: bool = True

    @property
    def runs(self) -> bool:
        return bool(self.windows)

    def totals(self) -> dict[str, Any]:
        walk = sum(leg.distance_m for leg in self.legs if leg.mode == "walk")
        return {
            "duration_s": int((self.end - self.start).total_seconds()),
            "distance_m": round(sum(leg.distance_m for leg in self.legs), 1),
            "walking_m": round(walk, 1),
            "travel_s": sum(leg.duration_s for leg in self.legs),
            "wait_s": sum(stop.wait_s for stop in self.stops),
            "visit_s": sum(int((s.departure - s.visit_start).total_seconds()) for s in self.stops),
            "stops": len(self.stops),
            "legs": len(self.legs),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "night": self.night.isoformat(),
            "pace": self.pace,
            "walking_speed_kmh": PACE_KMH[self.pace],
            "runs": self.runs,
            "start_windows": [{"start": iso(a), "end": iso(b)} for a, b in self.windows],
            "start": iso(self.start),
            "end": iso(self.end),
            "complete": self.complete,
            "stops": [s.to_dict() for s in self.stops],
            "legs": [leg.to_dict() for leg in self.legs],
            "totals": self.totals(),
            "warnings": [w.to_dict() for w in self.warnings],
        }


# ---- the engine -------------------------------------------------------------------------------------------


def start_windows(schedule: str | None, night: date) -> list[tuple[datetime, datetime]]:
    """The open intervals of a route's schedule during ``night`` (12:00 to 12:00)."""
    if not schedule:
        return []
    return parse_schedule(schedule).open_intervals(*night_bounds(night))


def leg_distance(leg: LegSpec, a: StopSpec, b: StopSpec) -> tuple[float, str]:
    if leg.path is not None and len(leg.path) >= 2:
        return path_length_m(leg.path), "path"
    if leg.distance_m is not None:
        return float(leg.distance_m), "given"
    return haversine_m(a.lon, a.lat, b.lon, b.lat) * DETOUR_FACTOR, "great_circle"


def _hm(moment: datetime) -> str:
    return moment.astimezone(TZ).strftime("%H:%M")


def _occurrences(stop: StopSpec, kind: str, night: date) -> list[Occurrence]:
    found = [
        Occurrence(e.name, e.kind, t, t + timedelta(minutes=e.duration_minutes))
        for e in stop.events
        if e.kind == kind
        for t in e.occurrences(night)
    ]
    return sorted(found, key=lambda o: (o.start, o.name))


def _catch(
    options: list[Occurrence],
    ready: datetime,
    planned: Occurrence | None,
    index: int,
    stop: StopSpec,
) -> tuple[Occurrence | None, list[Notice]]:
    """The first occurrence at or after ``ready``; a warning if none is left or the planned one is missed."""
    nxt = next((o for o in options if o.start >= ready), None)
    what = "boat" if options and options[0].kind == "boat" else "event"
    if nxt is None:
        last = options[-1]
        return None, [
            Notice(
                "no_event_left",
                f"no {what} left at {stop.name} after {_hm(ready)} tonight; the last was at {_hm(last.start)}",
                stop=index,
            )
        ]
    if planned is not None and planned.start < ready:
        late = math.ceil((ready - planned.start).total_seconds() / 60)
        return nxt, [
            Notice(
                "event_missed",
                f"misses the planned {_hm(planned.start)} {planned.name} at {stop.name} by {late} min; "
                f"taking the {_hm(nxt.start)} one",
                stop=index,
            )
        ]
    return nxt, []


def _opening_notices(stop: StopSpec, index: int, enter: datetime, leave: datetime) -> list[Notice]:
    if not stop.opening_hours:
        return []
    hours = parse_schedule(stop.opening_hours)
    if hours.state(enter) is False:
        change = hours.next_change(enter, horizon=timedelta(hours=18))
        reopens = f"; it opens at {_hm(change)}" if change else ""
        return [
            Notice("poi_closed_at_arrival", f"{stop.name} is closed at {_hm(enter)}{reopens}", stop=index)
        ]
    if leave > enter:
        for span in hours.intervals(enter, leave):
            if span.open is False:
                return [
                    Notice(
                        "finishes_after_close",
                        f"{stop.name} closes at {_hm(span.start)}, before the visit ends at {_hm(leave)}",
                        stop=index,
                    )
                ]
    return []


@dataclass(slots=True)
class _Run:
    stops: list[TimedStop]
    legs: list[TimedLeg]
    warnings: list[Notice]
    complete: bool


def _run(
    night: date,
    stops: Sequence[StopSpec],
    legs: Sequence[LegSpec],
    pace: str,
    start: datetime,
    plan: list[Occurrence | None] | None,
) -> _Run:
    """One pass over the stops. ``plan``: the occurrence the planned itinerary catches at each stop."""
    timed_stops: list[TimedStop] = []
    timed_legs: list[TimedLeg] = []
    warnings: list[Notice] = []
    complete = True
    arrival = start
    for i, stop in enumerate(stops):
        dwell = timedelta(minutes=stop.dwell_minutes)
        planned = plan[i] if plan is not None else None
        shows = _occurrences(stop, "performance", night)
        caught: Occurrence | None = None
        notes: list[Notice] = []
        if i < len(legs) and legs[i].mode == "boat":
            departures = _occurrences(stop, "boat", night)
            if departures:
                caught, notes = _catch(departures, arrival + dwell, planned, i, stop)
                complete = complete and caught is not None
            departure = caught.start if caught else arrival + dwell
            visit_start = departure - dwell
            enter = arrival
        else:
            if shows:
                caught, notes = _catch(shows, arrival, planned, i, stop)
            visit_start = caught.start if caught else arrival
            departure = max(visit_start + dwell, caught.end if caught else visit_start)
            enter = visit_start
        warnings.extend(notes)
        warnings.extend(_opening_notices(stop, i, enter, departure))
        timed_stops.append(
            TimedStop(
                index=i,
                poi_id=stop.poi_id,
                name=stop.name,
                lon=stop.lon,
                lat=stop.lat,
                arrival=arrival,
                visit_start=visit_start,
                departure=departure,
                dwell_s=int(dwell.total_seconds()),
                wait_s=int((visit_start - arrival).total_seconds()),
                event=caught,
                also_on=[o for o in shows if visit_start <= o.start < departure and o is not caught],
            )
        )
        if i < len(legs):
            leg, nxt_stop = legs[i], stops[i + 1]
            distance, source = leg_distance(leg, stop, nxt_stop)
            seconds = travel_seconds(leg.mode, distance, pace, leg.duration_s)
            arrival = departure + timedelta(seconds=seconds)
            timed_legs.append(
                TimedLeg(
                    index=i,
                    mode=leg.mode,
                    from_poi=stop.poi_id,
                    to_poi=nxt_stop.poi_id,
                    distance_m=distance,
                    distance_source=source,
                    duration_s=seconds,
                    fixed=leg.duration_s is not None,
                    departure=departure,
                    arrival=arrival,
                )
            )
    return _Run(timed_stops, timed_legs, warnings, complete)


def planned_start(windows: list[tuple[datetime, datetime]], night: date) -> datetime:
    return windows[0][0] if windows else datetime.combine(night, DEFAULT_START, TZ)


def build_itinerary(
    *,
    night: date,
    stops: Sequence[StopSpec],
    legs: Sequence[LegSpec],
    pace: str = "normal",
    start: datetime | None = None,
    route_schedule: str | None = None,
) -> Itinerary:
    """Time every stop and leg of one night.

    ``start`` None: the opening of the night's first start window (19:00 if none). The *plan* is
    the itinerary at the normal pace from that opening; ``event_missed`` means this itinerary
    reaches a stop after the event or boat the plan catches there.
    """
    if len(legs) != max(len(stops) - 1, 0):
        raise ValueError("a route needs exactly one leg between consecutive stops")
    if pace not in PACE_KMH:
        raise ValueError(f"unknown pace {pace!r}")
    windows = start_windows(route_schedule, night)
    warnings: list[Notice] = []
    if route_schedule is not None and not windows:
        warnings.append(
            Notice("route_not_running", f"the route does not run on the night of {night.isoformat()}")
        )
    plan_start = planned_start(windows, night)
    if start is None:
        start = plan_start
    elif windows and not any(a <= start < b for a, b in windows):
        spans = ", ".join(f"{_hm(a)}-{_hm(b)}" for a, b in windows)
        warnings.append(
            Notice("start_outside_window", f"{_hm(start)} is outside tonight's start windows ({spans})")
        )
    start = start.astimezone(TZ)
    plan = _run(night, stops, legs, "normal", plan_start, None)
    run = (
        plan
        if (start == plan_start and pace == "normal")
        else _run(night, stops, legs, pace, start, [s.event for s in plan.stops])
    )
    end = run.stops[-1].departure if run.stops else start
    return Itinerary(
        night, pace, start, end, windows, run.stops, run.legs, warnings + run.warnings, run.complete
    )
