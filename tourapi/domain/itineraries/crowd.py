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
full >= 100 %). ``Forecast`` is pure; :func:`load_inputs` reads Redis and the snapshot table.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import OccupancySnapshot
from tourapi.live.crowd import crowd_level
from tourapi.runtime import Runtime

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
    """Live occupancy (one pipelined Redis round trip) and the snapshot rows the forecast needs (one query)."""
    now = clock()
    interval = runtime.settings.snapshot_interval_s
    start, end = t0.timestamp(), t1.timestamp()
    live_applies = start <= now + LIVE_AFTER_S and end >= now - LIVE_BEFORE_S
    if not capacity:
        return CrowdInputs(now, interval, capacity, {} if live_applies else None)
    live = None
    ranges: list[tuple[float, float, int]] = []  # (from, to, weeks back; 0 = the trend window)
    if live_applies:
        occupancy = await runtime.live.occupancy()
        live = {poi: n for poi, n in occupancy.items() if poi in capacity}
        ranges.append((now - TREND_WINDOW_S, now, 0))
    for k in range(1, HISTORY_WEEKS + 1):
        ranges.append((start - k * WEEK_S - interval, end - k * WEEK_S, k))
    rows = await _rows(session, sorted(capacity), ranges)
    recent: dict[str, dict[float, int]] = defaultdict(dict)
    history: dict[str, dict[float, int]] = defaultdict(dict)
    weeks: set[int] = set()
    recent_recorded = False
    for poi, bucket, occupancy in rows:
        b = _ts(bucket)
        for lo, hi, k in ranges:
            if lo <= b <= hi:
                if k == 0:
                    recent[poi][b] = occupancy
                    recent_recorded = True
                else:
                    history[poi][b] = occupancy
                    weeks.add(k)
    return CrowdInputs(
        now=now,
        interval_s=interval,
        capacity=capacity,
        live=live,
        recent=dict(recent),
        recent_recorded=recent_recorded,
        history=dict(history),
        history_weeks=tuple(sorted(weeks)),
    )


async def _rows(
    session: AsyncSession, pois: list[str], ranges: Iterable[tuple[float, float, int]]
) -> list[tuple[str, datetime, int]]:
    """One round trip; one range scan of the (poi_id, bucket) primary key per time span (a UNION ALL:
    SQLite would not use the index for an OR of ranges)."""
    col = OccupancySnapshot
    parts = [
        select(col.poi_id, col.bucket, col.occupancy).where(
            col.poi_id.in_(pois),
            col.bucket >= datetime.fromtimestamp(lo, UTC),
            col.bucket <= datetime.fromtimestamp(hi, UTC),
        )
        for lo, hi, _ in ranges
    ]
    return [(r[0], r[1], int(r[2])) for r in (await session.execute(union_all(*parts))).all()]
