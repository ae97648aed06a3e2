"""Background jobs of the live state, run by one leader among the API workers.

The leader is elected with a Redis lock that expires unless renewed, so a
killed worker hands over within a few seconds. Every job is safe to run twice
(sweeps skip what is already done; snapshots upsert by (poi, bucket)).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from tourapi.db.models import Alert, OccupancySnapshot
from tourapi.db.upsert import upsert
from tourapi.live.crowd import LEVELS, crowd_level
from tourapi.timeutil import night_of

if TYPE_CHECKING:
    from tourapi.runtime import Runtime

log = logging.getLogger("tourapi.live.jobs")
LEASE_MS = 6000
ELECT_EVERY_S = 2.0
SWEEP_EVERY_S = 10.0
# An alert re-arms only once occupancy falls this far (share of capacity) below its level's threshold.
ALERT_HYSTERESIS = 0.05
RANK = {level: n for n, level in enumerate(LEVELS)}
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class LiveJobs:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.worker_id = secrets.token_hex(6)
        self.is_leader = False
        self._renew = runtime.redis.register_script(_RENEW)
        self._last_bucket: datetime | None = None

    def register(self) -> None:
        self.runtime.every("live-leader", ELECT_EVERY_S, self.elect)
        self.runtime.every("live-aggregate", self.runtime.settings.aggregate_interval_s, self.aggregate)
        self.runtime.every("live-sweep", SWEEP_EVERY_S, self.sweep)
        self.runtime.every(
            "live-snapshot", min(30.0, self.runtime.settings.snapshot_interval_s / 2), self.snapshot
        )

    async def elect(self) -> None:
        key = self.runtime.live.keys.global_key("leader")
        redis = self.runtime.redis
        if await redis.set(key, self.worker_id, nx=True, px=LEASE_MS):
            if not self.is_leader:
                log.info("worker %s is now the live-state leader", self.worker_id)
            self.is_leader = True
            return
        self.is_leader = bool(await self._renew(keys=[key], args=[self.worker_id, LEASE_MS]))

    async def sweep(self) -> None:
        if self.is_leader:
            report = await self.runtime.live.sweep()
            if report.expired_sessions or report.timed_out:
                log.info(
                    "swept %d expired sessions, %d presence timeouts",
                    report.expired_sessions,
                    report.timed_out,
                )

    def _bucket(self, now: float) -> datetime:
        interval = self.runtime.settings.snapshot_interval_s
        return datetime.fromtimestamp(now - now % interval, UTC)

    async def snapshot(self, now: float | None = None, force: bool = False) -> int:
        """Persist the current counts once per interval bucket. Returns rows written."""
        if not (self.is_leader or force):
            return 0
        now = time.time() if now is None else now
        bucket = self._bucket(now)
        if bucket == self._last_bucket and not force:
            return 0
        live = self.runtime.live
        occupancy = await live.occupancy()
        counters = await live.night_counters(night_of(datetime.fromtimestamp(now, UTC)))
        index = self.runtime.fences.index
        rows = []
        for poi in sorted(set(occupancy) | set(counters)):
            if poi not in index.position:
                continue
            c = counters.get(poi, {})
            rows.append(
                {
                    "poi_id": poi,
                    "bucket": bucket,
                    "occupancy": occupancy.get(poi, 0),
                    "entries_tonight": c.get("entries", 0),
                    "checkins_tonight": c.get("checkins", 0),
                    "unique_tonight": c.get("unique", 0),
                    "capacity": index.sources[index.position[poi]].capacity,
                }
            )
        async with self.runtime.sessionmaker() as session:
            await upsert(session, OccupancySnapshot, rows, ["poi_id", "bucket"])
            await session.commit()
        self._last_bucket = bucket
        return len(rows)

    # ---- aggregation: transitions -> operator events, crowd levels and alerts ------------------------------

    async def aggregate(self, now: float | None = None) -> list[tuple[str, dict[str, Any]]]:
        """One tick of the leader's aggregator; returns the events it published (for tests)."""
        if not self.is_leader:
            return []
        now = time.time() if now is None else now
        live, redis = self.runtime.live, self.runtime.redis
        k = live.keys
        cursor_key = k.global_key("aggregate-cursor")
        cursors = await redis.hgetall(cursor_key)
        pipe = redis.pipeline(transaction=False)
        for shard in k.all_shards():
            pipe.xrange(k.transitions(shard), min=f"({cursors.get(str(shard), '0-0')}", count=5000)
        batches = await pipe.execute()
        tally: dict[str, dict[str, int]] = defaultdict(
            lambda: {"enters": 0, "exits": 0, "dwells": 0, "checkins": 0}
        )
        new_cursors = {}
        for shard, entries in zip(k.all_shards(), batches):
            for _eid, fields in entries:
                kind = {"enter": "enters", "exit": "exits", "dwell": "dwells", "checkin": "checkins"}.get(
                    fields["t"]
                )
                if kind:
                    tally[fields["p"]][kind] += 1
            if entries:
                new_cursors[str(shard)] = entries[-1][0]
        occupancy = await live.occupancy()
        index = self.runtime.fences.index
        levels_key = k.global_key("crowd")
        previous = await redis.hgetall(levels_key)
        published: list[tuple[str, dict[str, Any]]] = []
        changed_levels: dict[str, str] = {}
        rows = []
        for poi in sorted(set(occupancy) | set(previous) | set(tally)):
            if poi not in index.position:
                continue
            capacity = index.sources[index.position[poi]].capacity
            occ = occupancy.get(poi, 0)
            level = crowd_level(occ, capacity)
            if previous.get(poi, "comfortable") != level:
                changed_levels[poi] = level
                published.append(
                    (
                        "crowd_level",
                        {
                            "poi_id": poi,
                            "from": previous.get(poi, "comfortable"),
                            "to": level,
                            "capacity": capacity,
                        },
                    )
                )
            if poi in tally:
                rows.append(
                    {"poi_id": poi, "occupancy": occ, "capacity": capacity, "level": level, **tally[poi]}
                )
        if rows:
            published.insert(0, ("occupancy", {"pois": rows}))
        checkins = [{"poi_id": p, "count": t["checkins"]} for p, t in sorted(tally.items()) if t["checkins"]]
        if checkins:
            published.append(("checkin", {"pois": checkins}))
        published += await self._alerts(occupancy, index, now)
        for kind, data in published:
            await self.runtime.events.publish(kind, data)
        pipe = redis.pipeline(transaction=False)
        if changed_levels:
            pipe.hset(levels_key, mapping=changed_levels)
        if new_cursors:
            pipe.hset(cursor_key, mapping=new_cursors)
        await pipe.execute()
        return published

    async def _alerts(
        self, occupancy: dict[str, int], index: Any, now: float
    ) -> list[tuple[str, dict[str, Any]]]:
        """Raise an alert once when a venue reaches busy/crowded/full; re-arm below the threshold minus 5%."""
        redis = self.runtime.redis
        armed_key = self.runtime.live.keys.global_key("alert-armed")
        armed = {poi: int(rank) for poi, rank in (await redis.hgetall(armed_key)).items()}
        events: list[tuple[str, dict[str, Any]]] = []
        raise_rows: list[Alert] = []
        rearm: dict[str, int] = {}
        cleared: list[tuple[str, int]] = []
        for poi in sorted(set(occupancy) | set(armed)):
            if poi not in index.position:
                continue
            capacity = index.sources[index.position[poi]].capacity
            occ = occupancy.get(poi, 0)
            rank = RANK[crowd_level(occ, capacity)]
            current = armed.get(poi, 0)
            if rank > current:
                raise_rows.append(
                    Alert(
                        poi_id=poi,
                        level=LEVELS[rank],
                        occupancy=occ,
                        capacity=capacity,
                        raised_at=datetime.fromtimestamp(now, UTC),
                    )
                )
                rearm[poi] = rank
            elif current > 0:
                relaxed = RANK[crowd_level(occ + int(ALERT_HYSTERESIS * capacity), capacity)]
                if relaxed < current:
                    rearm[poi] = relaxed
                    cleared.append((poi, relaxed))
        if not (raise_rows or rearm):
            return events
        async with self.runtime.sessionmaker() as session:
            for poi, below in cleared:
                await session.execute(
                    update(Alert)
                    .where(
                        Alert.poi_id == poi, Alert.cleared_at.is_(None), Alert.level.in_(LEVELS[below + 1 :])
                    )
                    .values(cleared_at=datetime.fromtimestamp(now, UTC))
                )
            session.add_all(raise_rows)
            await session.commit()
            for row in raise_rows:
                events.append(("alert", alert_json(row)))
        await redis.hset(armed_key, mapping={poi: str(rank) for poi, rank in rearm.items()})
        return events


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "poi_id": alert.poi_id,
        "level": alert.level,
        "occupancy": alert.occupancy,
        "capacity": alert.capacity,
        "raised_at": alert.raised_at.isoformat(),
        "acked_at": alert.acked_at.isoformat() if alert.acked_at else None,
        "acked_by": alert.acked_by,
        "cleared_at": alert.cleared_at.isoformat() if alert.cleared_at else None,
    }
