"""Background jobs of the live state, run by one leader among the API workers.

The leader is elected with a Redis lock that expires unless renewed, so a
killed worker hands over within a few seconds. Every job is safe to run twice
(sweeps skip what is already done; snapshots upsert by (poi, bucket)).
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tourapi.db.models import OccupancySnapshot
from tourapi.db.upsert import upsert
from tourapi.timeutil import night_of

if TYPE_CHECKING:
    from tourapi.runtime import Runtime

log = logging.getLogger("tourapi.live.jobs")
LEASE_MS = 6000
ELECT_EVERY_S = 2.0
SWEEP_EVERY_S = 10.0
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
        self.runtime.every("live-sweep", SWEEP_EVERY_S, self.sweep)
        self.runtime.every("live-snapshot", min(30.0, self.runtime.settings.snapshot_interval_s / 2), self.snapshot)

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
                log.info("swept %d expired sessions, %d presence timeouts", report.expired_sessions,
                         report.timed_out)

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
            rows.append({
                "poi_id": poi, "bucket": bucket, "occupancy": occupancy.get(poi, 0),
                "entries_tonight": c.get("entries", 0), "checkins_tonight": c.get("checkins", 0),
                "unique_tonight": c.get("unique", 0), "capacity": index.sources[index.position[poi]].capacity,
            })
        async with self.runtime.sessionmaker() as session:
            await upsert(session, OccupancySnapshot, rows, ["poi_id", "bucket"])
            await session.commit()
        self._last_bucket = bucket
        return len(rows)
