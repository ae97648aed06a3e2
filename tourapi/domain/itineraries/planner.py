"""Personal night itineraries: candidates -> OPTW instance -> PyVRP -> a timed itinerary.

Pure: no database, no web framework. services.py loads the catalogue and the crowd inputs and
runs :func:`prepare` and :func:`plan` in a worker thread. docs/planner.md explains the model.

Nodes (the OPTW candidates), times in whole seconds after the plan's start:

* **visit** -- a venue during one of its open intervals inside the plan: service = the POI's
  ``visit_minutes``, window = [interval start, interval end - visit] (the visit ends before
  closing). A venue open in several intervals gives one node per interval, in one mutually
  exclusive group. Score = interest x the category's weight.
* **visit with a show** -- per occurrence of a performance of a published route that runs that
  night, at a venue open for the whole show: a visit of the venue during which the show plays
  (service = max(visit, show), window = the starts that keep the show inside the visit and the
  visit inside the opening hours). Score = the visit's + a bonus of 0.5 x interest x
  max(venue category weight, ``performance_venue`` weight).
* **show** -- the same occurrence on its own: window open = close = its start, service =
  max(duration, 15 min), score = the bonus. All nodes of a venue (visits, visits with a show,
  shows) form one mutually exclusive group: the venue is visited once, a bonus never counts twice.
* **boat** -- one departure of a boat leg of such a route: it starts at the pier, ``boarding``
  minutes (the route's dwell at the pier) before the departure, lasts boarding + cruise and ends
  at the landing place, so travel is asymmetric (i -> j walks from i's end to j's start). Score =
  0.5 x pier interest x the ``pier`` weight (0 without that interest: then it is taken only when
  it saves walking, the solver's tie-break). The departures of one line form a group.

Walking: ``travel_seconds("walk", great circle x DETOUR_FACTOR, pace)``, as route legs without a path.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from tourapi.domain.itineraries.catalogue import BoatLine, Catalogue, Show, Venue
from tourapi.domain.itineraries.crowd import Forecast, level_of
from tourapi.domain.routes.schedule import (
    DETOUR_FACTOR,
    Itinerary,
    Notice,
    Occurrence,
    TimedLeg,
    TimedStop,
    iso,
    travel_seconds,
)
from tourapi.errors import ServiceUnavailable, Unprocessable
from tourapi.geo.crs import Crs, from_wgs84
from tourapi.geo.geometry import haversine_m
from tourapi.i18n import pick
from tourapi.itineraries.solver import (
    InfeasibleError,
    Instance,
    Node,
    Solution,
    SolverTimeout,
    check_feasible,
    schedule_route,
    solve_pyvrp,
)
from tourapi.timeutil import TZ, night_of, parse_schedule

SHOW_BONUS = 0.5
BOAT_BONUS = 0.5
MIN_SHOW_MINUTES = 15
MAX_NODES = 60
CROWDED_FACTOR = 0.5
SEED = 0
MAX_ITERATIONS = 250
TIME_CAP_S = 0.25  # safety cap only: 250 iterations take well under it (see docs/performance.md)
PLACE_NAMES = {
    "start": {"en": "Start", "zh-Hans": "起点", "zh-Hant": "起點"},
    "end": {"en": "End", "zh-Hans": "终点", "zh-Hant": "終點"},
}


@dataclass(frozen=True, slots=True)
class PlanInput:
    start: tuple[float, float]  # WGS-84
    end: tuple[float, float] | None
    t0: datetime  # whole seconds, Asia/Shanghai
    t1: datetime
    pace: str
    weights: dict[str, float]  # every category
    interests_given: bool
    must: tuple[str, ...]
    exclude: frozenset[str]
    avoid_crowds: bool
    chain: tuple[str, ...]
    crs: Crs
    window_field: str  # the input to blame when time runs out: budget_minutes or end_time


@dataclass(slots=True)
class Cand:
    id: str
    kind: str  # visit | show | boat
    poi_id: str  # where it starts
    end_poi_id: str  # where it ends (a boat: the landing place)
    open: int
    close: int
    service: int
    base: float  # score before the crowd factor
    weight: float
    group: str
    must: bool = False
    event: Occurrence | None = None  # the show caught (during the visit) or the boat taken
    bonus: float = 0.0  # the event's part of ``base``
    line: BoatLine | None = None
    factor: float = 1.0  # CROWDED_FACTOR when avoid_crowds penalises the whole window

    @property
    def score(self) -> float:
        return self.base * self.factor


class Walks:
    """Walking seconds and metres between the start, the end place and every venue (exact, cached)."""

    def __init__(self, inp: PlanInput, venues: dict[str, Venue]) -> None:
        self.pace = inp.pace
        self.points: dict[str, tuple[float, float]] = {"@start": inp.start}
        if inp.end is not None:
            self.points["@end"] = inp.end
        for v in venues.values():
            self.points[v.id] = (v.lon, v.lat)
        self.has_end = inp.end is not None
        self._cache: dict[tuple[str, str], tuple[int, float]] = {}

    def leg(self, a: str, b: str) -> tuple[int, float]:
        """(seconds, metres) from point a to point b."""
        if a == b:
            return 0, 0.0
        key = (a, b) if a < b else (b, a)
        found = self._cache.get(key)
        if found is None:
            (x1, y1), (x2, y2) = self.points[a], self.points[b]
            metres = haversine_m(x1, y1, x2, y2) * DETOUR_FACTOR
            found = (travel_seconds("walk", metres, self.pace), metres)
            self._cache[key] = found
        return found

    def seconds(self, a: str, b: str) -> int:
        return self.leg(a, b)[0]

    def to_end(self, a: str) -> int:
        return self.seconds(a, "@end") if self.has_end else 0


@dataclass(slots=True)
class Prepared:
    inp: PlanInput
    cat: Catalogue
    walks: Walks
    horizon: int
    nights: list[date]
    hours: dict[str, list[tuple[int, int]]]
    cands: list[Cand]  # reachable ones
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def poi_ids(self) -> list[str]:
        return sorted({c.poi_id for c in self.cands})


def hm(moment: datetime) -> str:
    return moment.astimezone(TZ).strftime("%H:%M")


def _name(venue: Venue, chain: tuple[str, ...]) -> str:
    return pick(venue.name, chain)[0] or venue.id


# ---- stage 1: candidates (no crowd yet) ---------------------------------------------------------------


def prepare(inp: PlanInput, cat: Catalogue) -> Prepared:
    """Every node that is open, wanted and reachable in the window; 422 when none is, or a must-include fails."""
    t0, t1 = inp.t0, inp.t1
    horizon = int((t1 - t0).total_seconds())
    walks = Walks(inp, cat.venues)
    if inp.end is not None and walks.seconds("@start", "@end") > horizon:
        minutes = math.ceil(walks.seconds("@start", "@end") / 60)
        raise Unprocessable(
            f"walking from the start to the end place takes {minutes} min, longer than the "
            f"{math.floor(horizon / 60)} min available",
            field="end",
        )
    nights = sorted({night_of(t0), night_of(t1 - timedelta(seconds=1))})

    def sec(moment: datetime) -> int:
        return int((moment - t0).total_seconds())

    hours: dict[str, list[tuple[int, int]]] = {}
    for v in cat.venues.values():
        if v.id in inp.exclude:
            continue
        spans = parse_schedule(v.opening_hours).open_intervals(t0, t1) if v.opening_hours else [(t0, t1)]
        hours[v.id] = [(sec(a), sec(b)) for a, b in spans]

    cands: list[Cand] = []
    must = set(inp.must)
    for vid in sorted(hours):
        v = cat.venues[vid]
        w = inp.weights.get(v.category, 0.0)
        if w <= 0 and vid not in must:
            continue
        visit = v.visit_minutes * 60
        for k, (a, b) in enumerate(hours[vid]):
            if b - visit >= a:
                cands.append(
                    Cand(
                        f"visit:{vid}:{k}",
                        "visit",
                        vid,
                        vid,
                        a,
                        b - visit,
                        visit,
                        v.interest * w,
                        w,
                        f"venue:{vid}",
                        must=vid in must,
                    )
                )
    for i, show in enumerate(cat.shows):
        cands.extend(_show_nodes(i, show, inp, cat, hours, nights, sec, horizon))
    for i, line in enumerate(cat.boats):
        cands.extend(_boat_nodes(i, line, inp, cat, hours, nights, sec, horizon))

    def reachable(c: Cand) -> bool:
        st = max(walks.seconds("@start", c.poi_id), c.open)
        return st <= c.close and st + c.service + walks.to_end(c.end_poi_id) <= horizon

    for i, pid in enumerate(inp.must):
        _check_must(i, pid, inp, cat, hours, cands, reachable, walks, horizon)
    ok = [c for c in cands if reachable(c)]
    if not ok:
        _nothing_possible(inp, cat, hours, cands, walks)
    counts = {
        "open_venues": sum(1 for spans in hours.values() if spans),
        "nodes_in_window": len(cands),
        "reachable_nodes": len(ok),
    }
    return Prepared(inp, cat, walks, horizon, nights, hours, sorted(ok, key=lambda c: c.id), counts)


def _show_nodes(
    i: int,
    show: Show,
    inp: PlanInput,
    cat: Catalogue,
    hours: dict[str, list[tuple[int, int]]],
    nights: list[date],
    sec: Any,
    horizon: int,
) -> list[Cand]:
    """Per occurrence: a visit of the venue during which the show plays, and the show on its own.

    Both belong to the venue's group, so a venue is visited at most once and a show's bonus is
    never collected twice.
    """
    v = cat.venues.get(show.poi_id)
    if v is None or v.id not in hours:
        return []
    w_visit = inp.weights.get(v.category, 0.0)
    w_show = max(w_visit, inp.weights.get("performance_venue", 0.0))
    must = v.id in inp.must
    if w_show <= 0 and not must:
        return []
    duration = show.spec.duration_minutes * 60
    alone = max(duration, MIN_SHOW_MINUTES * 60)
    visit = v.visit_minutes * 60
    with_visit = max(visit, duration)
    bonus = SHOW_BONUS * v.interest * w_show
    name = pick(show.name, inp.chain)[0] or ""
    out = []
    for night in nights:
        for t in show.spec.occurrences(night):
            s = sec(t)
            event = Occurrence(name, "performance", t, t + timedelta(seconds=duration))
            stamp = f"{t.astimezone(TZ):%Y%m%dT%H%M}"
            span = next(((a, b) for a, b in hours[v.id] if a <= s < b and s + duration <= b), None)
            if span is None or s < 0 or s + duration > horizon:
                continue  # a show at a closed venue (or outside the plan) is no candidate
            a, b = span
            lo, hi = max(a, s + duration - with_visit), min(s, b - with_visit)
            if (w_visit > 0 or must) and lo <= hi:
                out.append(
                    Cand(
                        f"visit:{v.id}:show{i}:{stamp}",
                        "visit",
                        v.id,
                        v.id,
                        lo,
                        hi,
                        with_visit,
                        v.interest * w_visit + bonus,
                        w_visit,
                        f"venue:{v.id}",
                        must=must,
                        event=event,
                        bonus=bonus,
                    )
                )
            if w_show > 0 and not must and s + alone <= b:  # a must-include venue gets a real visit
                out.append(
                    Cand(
                        f"show:{v.id}:show{i}:{stamp}",
                        "show",
                        v.id,
                        v.id,
                        s,
                        s,
                        alone,
                        bonus,
                        w_show,
                        f"venue:{v.id}",
                        must=must,
                        event=event,
                        bonus=bonus,
                    )
                )
    return out


def _boat_nodes(
    i: int,
    line: BoatLine,
    inp: PlanInput,
    cat: Catalogue,
    hours: dict[str, list[tuple[int, int]]],
    nights: list[date],
    sec: Any,
    horizon: int,
) -> list[Cand]:
    pier, dest = cat.venues.get(line.pier_id), cat.venues.get(line.dest_id)
    if pier is None or dest is None or pier.id not in hours or dest.id in inp.exclude:
        return []
    w = inp.weights.get(pier.category, 0.0)
    boarding, cruise = line.boarding_minutes * 60, line.cruise_minutes * 60
    name = pick(line.name, inp.chain)[0] or ""
    out = []
    for night in nights:
        for t in line.spec.occurrences(night):
            d = sec(t)
            o = d - boarding
            if o < 0 or d + cruise > horizon:
                continue
            if not any(a <= o and d <= b for a, b in hours[pier.id]):
                continue  # the pier must be open from boarding to departure
            out.append(
                Cand(
                    f"boat:{i}:{t.astimezone(TZ):%Y%m%dT%H%M}",
                    "boat",
                    pier.id,
                    dest.id,
                    o,
                    o,
                    boarding + cruise,
                    BOAT_BONUS * pier.interest * max(w, 0.0),
                    w,
                    f"boat:{line.key}",
                    event=Occurrence(name, "boat", t, t + timedelta(seconds=cruise)),
                    line=line,
                )
            )
    return out


def _check_must(
    i: int,
    pid: str,
    inp: PlanInput,
    cat: Catalogue,
    hours: dict[str, list[tuple[int, int]]],
    cands: list[Cand],
    reachable: Any,
    walks: Walks,
    horizon: int,
) -> None:
    field_name = f"must_include[{i}]"
    t0, t1 = inp.t0, inp.t1
    if pid not in cat.venues:
        why = "has been removed from the catalogue" if pid in cat.deleted else "is not a known POI id"
        raise Unprocessable(f"{pid!r} {why}", field=field_name)
    v = cat.venues[pid]
    name = _name(v, inp.chain)
    visits = [c for c in cands if c.group == f"venue:{pid}"]
    if not visits:
        spans = hours.get(pid, [])
        if not spans:
            raise Unprocessable(f"{name} ({pid}) is closed between {hm(t0)} and {hm(t1)}", field=field_name)
        shown = ", ".join(
            f"{hm(t0 + timedelta(seconds=a))}-{hm(t0 + timedelta(seconds=b))}" for a, b in spans
        )
        raise Unprocessable(
            f"{name} ({pid}) is open only {shown} in that time, too short for its {v.visit_minutes}-minute visit",
            field=field_name,
        )
    if any(reachable(c) for c in visits):
        return
    c = max(visits, key=lambda c: (c.close, c.id))
    walk = walks.seconds("@start", pid)
    arrive = t0 + timedelta(seconds=walk)
    st = max(walk, c.open)
    if st > c.close:
        raise Unprocessable(
            f"{name} ({pid}) cannot be visited: walking there takes {math.ceil(walk / 60)} min "
            f"(arriving {hm(arrive)}), but a {v.visit_minutes}-minute visit has to start by "
            f"{hm(t0 + timedelta(seconds=c.close))} to end before it closes",
            field=field_name,
        )
    done = t0 + timedelta(seconds=st + c.service + walks.to_end(pid))
    where = "at the end place" if walks.has_end else "done"
    raise Unprocessable(
        f"{name} ({pid}) cannot be visited: after a {v.visit_minutes}-minute visit from "
        f"{hm(t0 + timedelta(seconds=st))} you would be {where} at {hm(done)}, after {hm(t1)}",
        field=field_name,
    )


def _nothing_possible(
    inp: PlanInput, cat: Catalogue, hours: dict[str, list[tuple[int, int]]], cands: list[Cand], walks: Walks
) -> None:
    t0, t1 = inp.t0, inp.t1
    if not any(hours.values()):
        raise Unprocessable(f"nothing is open between {hm(t0)} and {hm(t1)}", field="start_time")
    if not cands:
        wanted = sorted(c for c, w in inp.weights.items() if w > 0)
        matching = [v for v in cat.venues.values() if hours.get(v.id) and inp.weights.get(v.category, 0) > 0]
        if matching:
            shortest = min(v.visit_minutes for v in matching)
            raise Unprocessable(
                f"nothing can be visited between {hm(t0)} and {hm(t1)}: the shortest visit to an open "
                f"venue you are interested in takes {shortest} min",
                field=inp.window_field,
            )
        raise Unprocessable(
            f"nothing that matches your interests ({', '.join(wanted)}) is open between {hm(t0)} and {hm(t1)}",
            field="interests",
        )
    soonest = min(cands, key=lambda c: (max(walks.seconds("@start", c.poi_id), c.open), c.id))
    st = t0 + timedelta(seconds=max(walks.seconds("@start", soonest.poi_id), soonest.open))
    v = cat.venues[soonest.poi_id]
    raise Unprocessable(
        f"no open venue can be reached and visited between {hm(t0)} and {hm(t1)}: the soonest, "
        f"{_name(v, inp.chain)}, could start at {hm(st)} and takes {math.ceil(soonest.service / 60)} min",
        field=inp.window_field,
    )


# ---- stage 2: crowd, solve, itinerary -------------------------------------------------------------------


@dataclass(slots=True)
class Steered:
    poi_id: str
    name: str
    level: str
    first: datetime  # the first and last service start affected
    last: datetime
    action: str  # excluded | penalised
    kinds: set[str]


def _action(level: str, must: bool) -> str | None:
    """What avoid_crowds does with a service start forecast at ``level``."""
    if level == "full" and not must:
        return "excluded"
    if level in ("crowded", "full"):  # a must-include venue is never dropped, only moved to a quieter time
        return "penalised"
    return None


def _crowd_split(
    prep: Prepared, forecast: Forecast
) -> tuple[list[Cand], int, dict[tuple[str, str], Steered]]:
    """With avoid_crowds: cut each node's window where the forecast level at the service start changes.

    A node whose window crosses from quiet to full becomes one node per span (same group, so the venue
    is still visited once): full spans are dropped, crowded ones keep CROWDED_FACTOR of the score. The
    forecast is thus applied at the planned service start, whatever time the solver picks. Returns the
    kept nodes, the number of spans dropped, and the crowds steered away from (reachable spans only).
    """
    inp, walks = prep.inp, prep.walks
    base = int(inp.t0.timestamp())
    reach: dict[str, tuple[int, int]] = {}
    for c in prep.cands:
        lo, hi = reach.get(c.poi_id, (c.open, c.close))
        reach[c.poi_id] = (min(lo, c.open), max(hi, c.close))
    timelines = {
        # most venues are never near crowded: one span, no bisection (the level only matters for the action)
        poi: [(lo, hi, level_of(peak))]
        if _action(level_of(peak := forecast.peak(poi)), False) is None
        else [(a - base, b - base, level) for a, b, level in forecast.timeline(poi, base + lo, base + hi)]
        for poi, (lo, hi) in sorted(reach.items())
    }
    kept: list[Cand] = []
    dropped = 0
    steered: dict[tuple[str, str], Steered] = {}
    for c in prep.cands:
        parts: list[list[Any]] = []  # [from, to, action, level]
        for a, b, level in timelines[c.poi_id]:
            a, b = max(a, c.open), min(b, c.close)
            if a > b:
                continue
            action = _action(level, c.must)
            if parts and parts[-1][2] == action:
                parts[-1][1] = b
            else:
                parts.append([a, b, action, level])
        walk = walks.seconds("@start", c.poi_id)
        for a, b, action, level in parts:
            node = c if len(parts) == 1 else dataclasses.replace(c, id=f"{c.id}@{a}", open=a, close=b)
            start = max(walk, a)
            if start > b or start + c.service + walks.to_end(c.end_poi_id) > prep.horizon:
                continue  # this span cannot be reached: no candidate, no crowd to report
            if action is not None:
                first, last = inp.t0 + timedelta(seconds=start), inp.t0 + timedelta(seconds=b)
                entry = steered.get((c.poi_id, action))
                if entry is None:
                    name = _name(prep.cat.venues[c.poi_id], inp.chain)
                    entry = steered[(c.poi_id, action)] = Steered(
                        c.poi_id, name, level, first, last, action, set()
                    )
                if first < entry.first:
                    entry.first, entry.level = first, level
                entry.last = max(entry.last, last)
                entry.kinds.add(c.kind)
            if action == "excluded":
                dropped += 1
                continue
            node.factor = CROWDED_FACTOR if action == "penalised" else 1.0
            kept.append(node)
    return kept, dropped, steered


def plan(prep: Prepared, forecast: Forecast, *, time_cap_s: float = TIME_CAP_S) -> dict[str, Any]:
    inp, walks = prep.inp, prep.walks
    t0 = inp.t0
    if inp.avoid_crowds:
        kept, excluded, steered = _crowd_split(prep, forecast)
    else:
        kept, excluded, steered = list(prep.cands), 0, {}
    if not any(c.score > 0 or c.must for c in kept):  # boats without interest only carry you somewhere
        if excluded:
            raise Unprocessable(
                "every venue you could reach is forecast full; try later, elsewhere, or with avoid_crowds false",
                field="avoid_crowds",
            )
        raise Unprocessable(
            f"nothing you are interested in can be visited between {hm(t0)} and {hm(inp.t1)}",
            field=inp.window_field,
        )
    nodes = _cap(kept, walks)
    instance = _instance(nodes, inp, walks, prep.horizon)
    try:
        sol = solve_pyvrp(instance, seed=SEED, time_limit=time_cap_s, max_iterations=MAX_ITERATIONS)
    except SolverTimeout:
        raise _busy() from None
    except InfeasibleError as exc:
        names = [
            _name(prep.cat.venues[g.split(":", 1)[1]], inp.chain) for g in exc.nodes if g.startswith("venue:")
        ]
        raise Unprocessable(
            f"{' and '.join(names) or 'the must-include venues'} cannot all be visited between "
            f"{hm(t0)} and {hm(inp.t1)}: their opening hours and the walks between them do not fit together",
            field="must_include",
        ) from None
    sol = earliest_alternatives(instance, sol)
    problems = check_feasible(instance, sol)
    by_id = {c.id: c for c in nodes}
    if inp.avoid_crowds:  # re-check the crowd rule at the planned times, from the forecast itself
        for v in sol.visits:
            c = by_id[v.node_id]
            level = forecast.expected(c.poi_id, (t0 + timedelta(seconds=round(v.start))).timestamp()).level
            action = _action(level, c.must)
            if action == "excluded" or c.factor != (CROWDED_FACTOR if action == "penalised" else 1.0):
                problems.append(f"{v.node_id}: forecast {level} at its service start, planned x {c.factor:g}")
    if problems:  # never hand out an infeasible plan
        raise RuntimeError(f"the solver returned an infeasible itinerary: {problems}")
    if not sol.visits:
        if sol.stopped_by == "time":
            raise _busy()
        raise Unprocessable(
            f"no venue fits between {hm(t0)} and {hm(inp.t1)} with the walks there"
            + (" and to the end place" if inp.end else ""),
            field=inp.window_field,
        )
    chosen = {by_id[v.node_id].poi_id for v in sol.visits}
    body = _itinerary(prep, forecast, sol, by_id)
    body["steered_away"] = [
        {
            "poi_id": s.poi_id,
            "name": s.name,
            "expected_level": s.level,
            "at": iso(s.first),
            "until": iso(s.last),
            "action": s.action,
            "kinds": sorted(s.kinds),
            "chosen": s.poi_id in chosen,
        }
        for s in sorted(steered.values(), key=lambda s: (s.first, s.poi_id, s.action))
    ]
    for stop in body["stops"]:
        s = steered.get((stop["poi_id"], "excluded"))
        if s is not None and "reasons" in stop:  # a venue stop, chosen outside its forecast full span
            stop["reasons"].append(
                {
                    "code": "crowd_avoided",
                    "message": f"forecast full for starts {hm(s.first)}-{hm(s.last)}: planned outside that time",
                }
            )
    body["candidates_considered"] = len(nodes)
    body["candidates"] = {
        **prep.counts,
        "excluded_as_full": excluded,
        "dropped_by_cap": len(kept) - len(nodes),
        "visits": sum(1 for c in nodes if c.kind == "visit"),
        "shows": sum(1 for c in nodes if c.kind == "show"),
        "boats": sum(1 for c in nodes if c.kind == "boat"),
    }
    body["solver"] = {
        "name": sol.solver,
        "seed": sol.seed,
        "iterations": sol.iterations,
        "max_iterations": MAX_ITERATIONS,
        "time_cap_s": time_cap_s,
        "stopped_by": sol.stopped_by,
    }
    if sol.stopped_by == "time":
        body["warnings"].append(
            Notice(
                "solver_time_cap",
                f"the solver hit its {time_cap_s:g} s safety cap after {sol.iterations} of "
                f"{MAX_ITERATIONS} iterations (the server is busy); the plan is valid but may "
                "differ on a retry",
            ).to_dict()
        )
    body["elapsed_s"] = sol.elapsed  # popped by the service into a Server-Timing header
    return body


def _busy() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the planner ran out of time before it found a plan (the server is busy); retry in a moment",
        headers={"Retry-After": "1"},
        slug="planner-busy",
    )


def earliest_alternatives(instance: Instance, sol: Solution) -> Solution:
    """Take the earliest show or boat that still fits.

    Waiting costs nothing in the OPTW objective, so the solver may pick, say, the 19:30 boat where
    the 18:45 one works as well. Along the route, each grouped node is replaced by the earliest
    alternative of its group with at least its score that keeps the route feasible (same order,
    same score or better). Deterministic; the result is checked by the caller.
    """
    nodes = {nd.id: nd for nd in instance.nodes}
    members = instance.group_members()
    order = list(sol.node_ids)
    current = sol
    for pos, nid in enumerate(list(order)):
        node = nodes[nid]
        if node.group is None:
            continue
        options = sorted(
            (instance.nodes[k - 1] for k in members[node.group]),
            key=lambda nd: (nd.open, nd.id),
        )
        for alt in options:
            if alt.open >= node.open or alt.id == nid or alt.score < node.score - 1e-9:
                continue
            trial = order[:pos] + [alt.id] + order[pos + 1 :]
            timed = schedule_route(instance, trial)
            if timed is not None and timed.score >= current.score - 1e-9:
                order, node = trial, alt
                current = dataclasses.replace(
                    current,
                    visits=timed.visits,
                    score=timed.score,
                    end_arrival=timed.end_arrival,
                    travel_time=timed.travel_time,
                )
                break
    return current


def _cap(cands: list[Cand], walks: Walks) -> list[Cand]:
    """At most MAX_NODES nodes: every must-include node, then the best score per minute of
    (walk from the start + service), ties by id."""
    must = [c for c in cands if c.must]
    rest = [c for c in cands if not c.must]

    def density(c: Cand) -> float:
        return c.score / max(1.0, (walks.seconds("@start", c.poi_id) + c.service) / 60)

    rest.sort(key=lambda c: (-density(c), c.id))
    keep = must + rest[: max(0, MAX_NODES - len(must))]
    return sorted(keep, key=lambda c: c.id)


def _instance(nodes: list[Cand], inp: PlanInput, walks: Walks, horizon: int) -> Instance:
    """Matrix index 0 = the start place, 1..n = the nodes, n+1 = the end place (or "wherever the
    last visit ends": 0 s from everywhere). Travel i -> j walks from i's end to j's start."""
    n = len(nodes)
    keys = sorted({c.poi_id for c in nodes} | {c.end_poi_id for c in nodes} | {"@start"})
    pos = {k: i for i, k in enumerate(keys)}
    walk = np.array([[walks.seconds(a, b) for b in keys] for a in keys], dtype=float)
    to_end = np.array([walks.to_end(k) for k in keys], dtype=float)
    starts = np.array([pos["@start"]] + [pos[c.poi_id] for c in nodes])  # row/column 0..n
    ends = np.array([pos["@start"]] + [pos[c.end_poi_id] for c in nodes])
    travel = np.zeros((n + 2, n + 2))
    travel[: n + 1, : n + 1] = walk[np.ix_(ends, starts)]
    travel[: n + 1, n + 1] = to_end[ends]
    np.fill_diagonal(travel, 0.0)
    return Instance(
        nodes=[Node(c.id, c.score, c.service, c.open, c.close, group=c.group) for c in nodes],
        travel=travel,
        start_time=0,
        end_time=horizon,
        required_groups=frozenset(f"venue:{pid}" for pid in inp.must),
    )


# ---- the itinerary ----------------------------------------------------------------------------------------


def _point(lon: float, lat: float, crs: Crs) -> tuple[float, float]:
    return (lon, lat) if crs is Crs.WGS84 else from_wgs84(lon, lat, crs)


def _reasons(c: Cand, prep: Prepared, start: datetime, level: str) -> list[dict[str, str]]:
    """Why this node is in the plan; ``level`` is the forecast at its service ``start``."""
    inp, cat = prep.inp, prep.cat
    v = cat.venues[c.poi_id]
    out = []
    if c.kind == "visit":
        part = c.base - c.bonus
        out.append(
            {
                "code": "interest",
                "message": f"{v.category} x {c.weight:g} weight, interest {v.interest:g} (+{part:.2f})",
            }
        )
    if c.must:
        out.append({"code": "must_include", "message": "you asked to include it"})
    if c.kind in ("visit", "show") and c.event is not None:
        during = " during the visit" if c.kind == "visit" else ""
        out.append(
            {
                "code": "event",
                "message": f"catches {c.event.name} at {hm(c.event.start)}{during} (+{c.bonus:.2f})",
            }
        )
    if c.kind == "boat":
        assert c.event is not None and c.line is not None
        dest = _name(cat.venues[c.line.dest_id], inp.chain)
        gain = f"+{c.base:.2f}" if c.base > 0 else "saves walking"
        out.append({"code": "boat", "message": f"takes the {hm(c.event.start)} boat to {dest} ({gain})"})
    if c.factor < 1:
        out.append(
            {"code": "crowd_penalty", "message": f"forecast {level} at {hm(start)}: score x {c.factor:g}"}
        )
    return out


@dataclass(slots=True)
class _Out:
    stops: list[TimedStop] = field(default_factory=list)
    legs: list[TimedLeg] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    points: list[str] = field(default_factory=list)  # walking point key of each stop


def _itinerary(prep: Prepared, forecast: Forecast, sol: Solution, by_id: dict[str, Cand]) -> dict[str, Any]:
    inp, cat, walks = prep.inp, prep.cat, prep.walks
    t0 = inp.t0

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=round(seconds))

    out = _Out()
    warnings: list[Notice] = []

    def add_stop(
        key: str,
        poi: str | None,
        name: str,
        arrival: datetime,
        visit_start: datetime,
        departure: datetime,
        dwell_s: int,
        event: Occurrence | None,
        also: list[Occurrence],
        extra: dict[str, Any],
    ) -> None:
        lon, lat = walks.points[key]
        x, y = _point(lon, lat, inp.crs)
        out.stops.append(
            TimedStop(
                index=len(out.stops),
                poi_id=poi or "",
                name=name,
                lon=x,
                lat=y,
                arrival=arrival,
                visit_start=visit_start,
                departure=departure,
                dwell_s=dwell_s,
                wait_s=int((visit_start - arrival).total_seconds()),
                event=event,
                also_on=also,
            )
        )
        out.extras.append(extra)
        out.points.append(key)

    def add_leg(
        mode: str,
        to_key: str,
        to_poi: str | None,
        departure: datetime,
        arrival: datetime,
        seconds: int,
        metres: float,
        source: str,
        fixed: bool,
    ) -> None:
        if departure + timedelta(seconds=seconds) != arrival:
            raise RuntimeError(f"leg to {to_key}: {departure} + {seconds} s != {arrival}")
        prev = out.stops[-1]
        out.legs.append(
            TimedLeg(
                index=len(out.legs),
                mode=mode,
                from_poi=prev.poi_id,
                to_poi=to_poi or "",
                distance_m=metres,
                distance_source=source,
                duration_s=seconds,
                fixed=fixed,
                departure=departure,
                arrival=arrival,
            )
        )

    def walk_leg(to_key: str, to_poi: str | None, arrival: datetime) -> None:
        seconds, metres = walks.leg(out.points[-1], to_key)
        add_leg(
            "walk", to_key, to_poi, out.stops[-1].departure, arrival, seconds, metres, "great_circle", False
        )

    start_name = pick(PLACE_NAMES["start"], inp.chain)[0] or "Start"
    add_stop("@start", None, start_name, t0, t0, t0, 0, None, [], {"kind": "start"})

    runs: list[list[tuple[Any, Cand]]] = []
    for v in sol.visits:
        c = by_id[v.node_id]
        if runs and runs[-1][-1][1].kind != "boat" and runs[-1][0][1].poi_id == c.poi_id:
            runs[-1].append((v, c))
        else:
            runs.append([(v, c)])

    def sail(boarding: tuple[Cand, datetime, datetime], next_poi: str | None) -> bool:
        """The boat leg, then a landing stop unless the boat lands at the next venue (True if it did not)."""
        boat, departs, lands = boarding
        assert boat.line is not None
        dest = boat.line.dest_id
        add_leg(
            "boat",
            dest,
            dest,
            departs,
            lands,
            boat.line.cruise_minutes * 60,
            boat.line.distance_m,
            boat.line.distance_source,
            True,
        )
        if dest == next_poi:
            return False
        dv = cat.venues[dest]
        add_stop(
            dest,
            dest,
            _name(dv, inp.chain),
            lands,
            lands,
            lands,
            0,
            None,
            [],
            {"kind": "landing", "category": dv.category},
        )
        return True

    pending: tuple[Cand, datetime, datetime] | None = None  # a boat: (node, departs, lands)
    for run in runs:
        first_v, first = run[0]
        poi = first.poi_id
        venue = cat.venues[poi]
        arrival = at(first_v.arrival)
        if pending is not None:
            if sail(pending, poi):
                walk_leg(poi, poi, arrival)
            pending = None
        else:
            walk_leg(poi, poi, arrival)
        last_v, last = run[-1]
        caught = [c.event for _, c in run if c.event is not None]
        visit_start = at(first_v.start)
        if last.kind == "boat":
            assert last.event is not None
            departure = last.event.start
            pending = (last, departure, at(last_v.departure))
        else:
            departure = at(last_v.departure)
        dwell = sum(
            c.line.boarding_minutes * 60 if c.kind == "boat" and c.line else c.service for _, c in run
        )
        also = [
            o
            for o in _shows_at(prep, poi)
            if visit_start <= o.start < departure
            and not any(o.start == e.start and o.name == e.name for e in caught)
        ]
        also = sorted(
            also + [e for e in caught[1:] if e.kind == "performance"], key=lambda o: (o.start, o.name)
        )
        level = forecast.expected(poi, visit_start.timestamp()).level
        kinds = {c.kind for _, c in run}
        kind = "boat" if "boat" in kinds else "visit" if "visit" in kinds else "show"
        must = any(c.must for _, c in run)
        extra = {
            "kind": kind,
            "category": venue.category,
            "must_include": must,
            "score": round(sum(c.score for _, c in run), 4),
            "reasons": [
                r
                for v, c in run
                for r in _reasons(c, prep, at(v.start), forecast.expected(poi, at(v.start).timestamp()).level)
            ]
            + [{"code": "crowd", "message": f"forecast {level} at {hm(visit_start)}"}],
            "crowd": {"expected_level": level, "at": iso(visit_start)},
        }
        index = len(out.stops)
        add_stop(
            poi,
            poi,
            _name(venue, inp.chain),
            arrival,
            visit_start,
            departure,
            dwell,
            caught[0] if caught else None,
            also,
            extra,
        )
        if level in ("crowded", "full"):
            why = "; kept because you asked to include it" if must else ""
            warnings.append(
                Notice(
                    "crowded_at_arrival",
                    f"{_name(venue, inp.chain)} is forecast {level} at {hm(visit_start)}{why}",
                    stop=index,
                )
            )
    if pending is not None:
        sail(pending, None)
    if inp.end is not None:
        end_at = at(sol.end_arrival)
        end_name = pick(PLACE_NAMES["end"], inp.chain)[0] or "End"
        walk_leg("@end", None, end_at)
        add_stop("@end", None, end_name, end_at, end_at, end_at, 0, None, [], {"kind": "end"})
    end = out.stops[-1].departure
    if end > inp.t1:
        raise RuntimeError(f"itinerary ends at {end}, after {inp.t1}")
    itinerary = Itinerary(
        night=night_of(t0),
        pace=inp.pace,
        start=t0,
        end=end,
        windows=[],
        stops=out.stops,
        legs=out.legs,
        warnings=warnings,
        complete=True,
    )
    body = itinerary.to_dict()
    body.pop("runs", None)
    body.pop("start_windows", None)
    for stop, extra in zip(body["stops"], out.extras, strict=True):
        if not stop["poi_id"]:
            stop["poi_id"] = None
        stop.update(extra)
    for leg in body["legs"]:
        leg["from"] = leg["from"] or None
        leg["to"] = leg["to"] or None
    body["score"] = round(sol.score, 4)
    return body


def _shows_at(prep: Prepared, poi: str) -> list[Occurrence]:
    found = []
    for show in prep.cat.shows:
        if show.poi_id != poi:
            continue
        name = pick(show.name, prep.inp.chain)[0] or ""
        for night in prep.nights:
            for t in show.spec.occurrences(night):
                found.append(
                    Occurrence(name, "performance", t, t + timedelta(minutes=show.spec.duration_minutes))
                )
    return found
