"""Crowd forecast for the itinerary planner: how full a venue is expected to be at a moment.

expected ratio(p, t) = max(live part, history part), as a share of the venue's *current* capacity:

* **Live part** (only for moments near now: ``now - 30 min <= t <= now + 3 h``): the live occupancy
  (Redis, every shard) plus the recent trend. The trend is the least-squares slope over the
  persisted five-minute snapshots of the last 45 minutes and the live value now, extrapolated
  from now to ``t`` for at most 60 minutes and bounded to +-0.25 of capacity. A bucket without a
  snapshot row counts as 0 (rows exist only for non-zero values) provided the snapshot job wrote
  any row for the planned venues in that window; otherwise there is no trend.
* **History part**: the average occupancy in the five-minute bucket holding the same time of night
  on the same night of the week over the previous four weeks (night-time visits follow the weekly
  cycle: evening openings are mostly Fri/Sat). Only weeks in which the snapshot table has a row
  for any planned venue in the planned time span count; a missing row in such a week is 0.

The level is :func:`tourapi.live.crowd.crowd_level` of that ratio (busy >= 80 %, crowded >= 90 %,
full >= 100 %). ``Forecast`` is pure (``expected`` at a moment, ``timeline`` exact to the second over
a span); :func:`load_inputs` reads Redis and the snapshot table (past nights cached per worker).
"""

from __future__ import annotations

import itertools
import math
import time
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import OccupancySnapshot
from tourapi.live.crowd import crowd_level
from tourapi.runtime import Runtime
from tourapi.timeutil import TZ, night_bounds, night_of

LIVE_BEFORE_S = 30 * 60  # the live state describes moments from 30 min ago ...
LIVE_AFTER_S = 3 * 3600  # ... to 3 h ahead
TREND_WINDOW_S = 45 * 60
TREND_HORIZON_S = 60 * 60
TREND_CAP = 0.25
HISTORY_WEEKS = 4
WEEK_S = 7 * 86400
_LEVEL_SCALE = 10_000  # crowd_level takes integers: ratio in 1/10000 of capacity


def clock() -> float:
    """Now, as a Unix time (tests replace it to plan a fixed night against live state)."""
    return time.time()


@dataclass(frozen=True, slots=True)
class CrowdInputs:
    now: float
    interval_s: int
    capacity: dict[str, int]
    live: dict[str, int] | None  # None: the plan is not near now, live state does not apply
    recent: dict[str, dict[float, int]] = field(default_factory=dict)  # poi -> bucket -> occupancy
    recent_recorded: bool = False
    history: dict[str, dict[float, int]] = field(default_factory=dict)
    history_weeks: tuple[int, ...] = ()  # weeks back that have data


@dataclass(frozen=True, slots=True)
class Expected:
    ratio: float
    level: str
    live: float | None  # the live part (None when live state does not apply)
    history: float | None  # the history part (None without recorded weeks)


def level_of(ratio: float) -> str:
    return crowd_level(math.floor(max(ratio, 0.0) * _LEVEL_SCALE + 1e-6), _LEVEL_SCALE)


def _slope(points: list[tuple[float, float]]) -> float:
    if len({x for x, _ in points}) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


class Forecast:
    def __init__(self, inputs: CrowdInputs) -> None:
        self.inputs = inputs
        self._slopes: dict[str, float] = {}
        if inputs.live is not None and inputs.recent_recorded:
            # the completed buckets of the last 45 minutes; the live value stands for now
            current = _bucket(inputs.now, inputs.interval_s)
            buckets = []
            b = current - inputs.interval_s
            while b >= inputs.now - TREND_WINDOW_S:
                buckets.append(b)
                b -= inputs.interval_s
            for poi, capacity in inputs.capacity.items():
                series = inputs.recent.get(poi, {})
                cap = max(capacity, 1)
                points = [(b, series.get(b, 0) / cap) for b in buckets]
                points.append((inputs.now, inputs.live.get(poi, 0) / cap))
                self._slopes[poi] = _slope(points)

    def live_applies(self, t: float) -> bool:
        now = self.inputs.now
        return self.inputs.live is not None and now - LIVE_BEFORE_S <= t <= now + LIVE_AFTER_S

    def expected(self, poi: str, t: float) -> Expected:
        inputs = self.inputs
        cap = max(inputs.capacity.get(poi, 1), 1)
        live_part = None
        if self.live_applies(t):
            assert inputs.live is not None
            ahead = min(max(t - inputs.now, 0.0), TREND_HORIZON_S)
            trend = max(-TREND_CAP, min(TREND_CAP, self._slopes.get(poi, 0.0) * ahead))
            live_part = max(0.0, inputs.live.get(poi, 0) / cap + trend)
        history_part = None
        if inputs.history_weeks:
            series = inputs.history.get(poi, {})
            total = sum(
                series.get(_bucket(t - k * WEEK_S, inputs.interval_s), 0) for k in inputs.history_weeks
            )
            history_part = total / len(inputs.history_weeks) / cap
        ratio = max(live_part or 0.0, history_part or 0.0)
        return Expected(ratio, level_of(ratio), live_part, history_part)

    def peak(self, poi: str) -> float:
        """A cheap upper bound of the expected ratio of ``poi`` at any moment."""
        inputs = self.inputs
        cap = max(inputs.capacity.get(poi, 1), 1)
        series = inputs.history.get(poi)
        bound = max(series.values()) / cap if series and inputs.history_weeks else 0.0
        if inputs.live is not None:
            bound = max(bound, inputs.live.get(poi, 0) / cap + TREND_CAP)
        return bound

    def timeline(self, poi: str, first: int, last: int) -> list[tuple[int, int, str]]:
        """The level at every whole second first..last (Unix times), as spans (from, to, level), both inclusive.

        Exact, not sampled: the history part is constant inside a five-minute bucket and the live part
        (live value + clamped linear trend) is monotone where it applies, so between the cuts below the
        level is monotone and bisection finds each second where it changes.
        """
        if last < first:
            return []
        inputs = self.inputs
        cuts = {first, last + 1}
        interval = inputs.interval_s
        series = inputs.history.get(poi) or {}
        weeks = inputs.history_weeks if series else ()
        cap = max(inputs.capacity.get(poi, 1), 1)

        offsets = [k * WEEK_S for k in weeks]
        aligned = all(off % interval == 0 for off in offsets)  # then bucket(t - off) = bucket(t) - off
        get = series.get

        def history_level(t: int) -> str:  # = expected(poi, t).level where live state does not apply
            if not weeks:
                return level_of(0.0)
            total = 0
            if aligned:
                b = t - t % interval
                for off in offsets:
                    total += get(b - off, 0)
            else:
                for off in offsets:
                    total += get(_bucket(t - off, interval), 0)
            return level_of(total / len(weeks) / cap)

        if series:
            for k in weeks:
                offset = (
                    k * WEEK_S
                ) % interval  # buckets of week k start at t with (t - offset) % interval == 0
                cuts.update(range(first - (first - offset) % interval + interval, last + 1, interval))
        live = inputs.live is not None
        if live:
            cuts.update(
                c
                for c in (math.ceil(inputs.now - LIVE_BEFORE_S), math.floor(inputs.now + LIVE_AFTER_S) + 1)
                if first < c <= last
            )
        bounds = sorted(cuts)
        spans: list[tuple[int, int, str]] = []

        def add(a: int, b: int, level: str) -> None:
            # halves of a bisection share their middle second, which has one level
            if spans and spans[-1][2] == level and a <= spans[-1][1] + 1:
                spans[-1] = (spans[-1][0], max(b, spans[-1][1]), level)
            else:
                spans.append((a, b, level))

        def split(a: int, b: int, la: str, lb: str) -> None:
            if la == lb:  # monotone in between: constant
                add(a, b, la)
            elif b == a + 1:
                add(a, a, la)
                add(b, b, lb)
            else:
                mid = (a + b) // 2
                lm = self.expected(poi, mid).level
                split(a, mid, la, lm)
                split(mid, b, lm, lb)

        for a, nxt in itertools.pairwise(bounds):
            b = nxt - 1
            if live and self.live_applies(a):
                split(a, b, self.expected(poi, a).level, self.expected(poi, b).level)
            else:
                add(a, b, history_level(a))
        return spans


def _bucket(t: float, interval_s: int) -> float:
    return t - t % interval_s


def _ts(moment: datetime) -> float:
    if moment.tzinfo is None:  # SQLite hands back naive UTC on some paths
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def load_inputs(
    runtime: Runtime,
    session: AsyncSession,
    capacity: dict[str, int],
    t0: datetime,
    t1: datetime,
) -> CrowdInputs:
    """Live occupancy (one pipelined Redis round trip), the recent snapshots for the trend, and the
    history of the same night of the week (past nights cached per worker, see :func:`_history`)."""
    now = clock()
    interval = runtime.settings.snapshot_interval_s
    start, end = t0.timestamp(), t1.timestamp()
    live_applies = start <= now + LIVE_AFTER_S and end >= now - LIVE_BEFORE_S
    if not capacity:
        return CrowdInputs(now, interval, capacity, {} if live_applies else None)
    pois = sorted(capacity)
    live = None
    recent: dict[str, dict[float, int]] = defaultdict(dict)
    if live_applies:
        occupancy = await runtime.live.occupancy()
        live = {poi: n for poi, n in occupancy.items() if poi in capacity}
        for poi, bucket, n in await _rows(session, pois, [(now - TREND_WINDOW_S, now)]):
            recent[poi][_ts(bucket)] = n
    spans = {k: (start - k * WEEK_S - interval, end - k * WEEK_S) for k in range(1, HISTORY_WEEKS + 1)}
    history, weeks = await _history(runtime, session, pois, spans, now)
    return CrowdInputs(
        now=now,
        interval_s=interval,
        capacity=capacity,
        live=live,
        recent=dict(recent),
        recent_recorded=bool(recent),
        history=history,
        history_weeks=weeks,
    )


# Per worker: the snapshot rows of whole past nights (night -> poi -> bucket -> occupancy), every
# venue. Past nights do not change (the snapshot job writes the current bucket only); the row count
# of the planned venues per night, compared on every use, catches backfills and purges.
CACHED_HISTORY_NIGHTS = 8
_nights: weakref.WeakKeyDictionary[Runtime, OrderedDict[date, dict[str, dict[float, int]]]] = (
    weakref.WeakKeyDictionary()
)


async def _history(
    runtime: Runtime,
    session: AsyncSession,
    pois: list[str],
    spans: dict[int, tuple[float, float]],
    now: float,
) -> tuple[dict[str, dict[float, int]], tuple[int, ...]]:
    """The snapshot rows of ``pois`` in the nights holding ``spans`` (weeks back -> time span), and the
    weeks whose span has a row for any of them."""
    nights = sorted({night_of(datetime.fromtimestamp(t, TZ)) for lo, hi in spans.values() for t in (lo, hi)})
    cache = _nights.setdefault(runtime, OrderedDict())
    # noon to just before the next noon (the bounds are inclusive)
    bounds = {
        night: (night_bounds(night)[0].timestamp(), night_bounds(night)[1].timestamp() - 1e-3)
        for night in nights
    }
    counts = await _counts(session, pois, [bounds[night] for night in nights])
    stale = []
    for night, count in zip(nights, counts, strict=True):
        cached = cache.get(night)
        if cached is None or sum(len(cached.get(poi, ())) for poi in pois) != count:
            stale.append(night)
    if stale:
        loaded: dict[date, dict[str, dict[float, int]]] = {night: defaultdict(dict) for night in stale}
        for poi, bucket, n in await _rows(session, None, [bounds[night] for night in stale]):
            t = _ts(bucket)
            loaded[night_of(datetime.fromtimestamp(t, TZ))][poi][t] = n
        for night in stale:
            if bounds[night][1] < now:  # only nights that are over are kept
                cache[night] = dict(loaded[night])
    by_night = {night: loaded[night] if night in stale else cache[night] for night in nights}
    for night in nights:
        if night in cache:
            cache.move_to_end(night)
    while len(cache) > CACHED_HISTORY_NIGHTS:
        cache.popitem(last=False)
    history: dict[str, dict[float, int]] = {}
    weeks: set[int] = set()
    for poi in pois:
        series: dict[float, int] = {}
        for rows in by_night.values():
            series.update(rows.get(poi, {}))
        if not series:
            continue
        history[poi] = series
        for k, (lo, hi) in spans.items():
            if k not in weeks and any(lo <= b <= hi for b in series):
                weeks.add(k)
    return history, tuple(sorted(weeks))


def _spans_where(pois: list[str] | None, lo: float, hi: float, *columns: Any) -> Select[Any]:
    col = OccupancySnapshot
    query = select(*columns).where(
        col.bucket >= datetime.fromtimestamp(lo, UTC), col.bucket <= datetime.fromtimestamp(hi, UTC)
    )
    return query.where(col.poi_id.in_(pois)) if pois is not None else query


async def _counts(session: AsyncSession, pois: list[str], spans: list[tuple[float, float]]) -> list[int]:
    """Rows of ``pois`` per night (from, to), in one round trip (an index-only count per night)."""
    parts = [
        _spans_where(pois, lo, hi, literal(i).label("i"), func.count().label("n"))
        for i, (lo, hi) in enumerate(spans)
    ]
    found = dict((await session.execute(union_all(*parts))).all())  # type: ignore[arg-type]
    return [int(found.get(i, 0)) for i in range(len(spans))]


async def _rows(
    session: AsyncSession, pois: list[str] | None, spans: Iterable[tuple[float, float]]
) -> list[tuple[str, datetime, int]]:
    """Snapshot rows of ``pois`` (None: every venue) in the time spans, in one round trip (a UNION ALL of
    range scans: SQLite would not use the index for an OR of ranges)."""
    col = OccupancySnapshot
    parts = [_spans_where(pois, lo, hi, col.poi_id, col.bucket, col.occupancy) for lo, hi in spans]
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    return [(r[0], r[1], int(r[2])) for r in (await session.execute(query)).all()]
