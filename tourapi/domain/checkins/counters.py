"""Keeping the Redis check-in counters true to the database (the system of record).

* ``repair_uncounted``: a periodic job (every REPAIR_EVERY_S on the live-state leader) that settles
  rows not yet flagged ``counted`` (older than REPAIR_GRACE_S, so it does not race the request that is
  counting them): one pipelined look at Redis's per-night set of counted record ids, counting only
  those Redis missed (it was down, or failed between commit and count), then one UPDATE per batch.
  Counting is idempotent per record id (checkin.lua), so overlapping runs never count a record twice.
  Rows of nights whose Redis counters have expired are flagged only.
* ``rebuild_night``: recounts a whole night from the database (``tourapi live rebuild``), for when Redis
  lost its data (flush, failover without persistence). Ping-derived entries only exist in Redis and are
  restored up to the night's latest occupancy snapshot. Safe while check-ins are being counted:
  recount.lua is idempotent per record id too.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tourapi.db.models import Checkin, OccupancySnapshot, Poi
from tourapi.domain.checkins.services import count_checkin
from tourapi.live.store import COUNTER_TTL_S, CheckinCount
from tourapi.timeutil import night_bounds, night_of
from tourapi.web.ratelimit import REDIS_UNAVAILABLE

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tourapi.runtime import Runtime

log = logging.getLogger("tourapi.checkins.counters")
REPAIR_EVERY_S = 30.0
REPAIR_GRACE_S = 60.0
REPAIR_JOB = "checkin-repair"
# Counters of older nights have expired in Redis (COUNTER_TTL_S): their late rows are flagged, not counted,
# so a row left over from a long outage cannot bring back a partial counter for an old night.
PAST_NIGHTS_COUNTED = COUNTER_TTL_S // 86400 - 1


def register_checkin_jobs(runtime: Runtime) -> None:
    """Called by create_app; idempotent (an app factory may run twice on one runtime in tests)."""
    if any(name == REPAIR_JOB for name, _, _ in runtime.periodic):
        return
    runtime.every(REPAIR_JOB, REPAIR_EVERY_S, lambda: repair_uncounted(runtime))


async def repair_uncounted(
    runtime: Runtime,
    *,
    now: float | None = None,
    grace_s: float = REPAIR_GRACE_S,
    batch: int = 500,
    force: bool = False,
) -> int:
    """Count the committed records Redis missed and flag every settled row. Returns how many it counted."""
    if not (force or runtime.jobs.is_leader):
        return 0
    now = time.time() if now is None else now
    cutoff = datetime.fromtimestamp(now - grace_s, UTC)
    oldest_counted = night_of(datetime.fromtimestamp(now, UTC)) - timedelta(days=PAST_NIGHTS_COUNTED)
    counted = 0
    redis_down = False
    async with runtime.sessionmaker() as session:
        while not redis_down:
            rows = (
                await session.execute(
                    sa.select(Checkin.id, Checkin.session_id, Checkin.night)
                    .where(sa.not_(Checkin.counted), Checkin.created_at <= cutoff)  # ix_checkins_uncounted
                    .order_by(Checkin.id)
                    .limit(batch)
                )
            ).all()
            if not rows:
                break
            history = {r.id for r in rows if r.night < oldest_counted}
            try:
                seen = history | await runtime.live.counted_checkins(
                    [(r.id, r.session_id, r.night) for r in rows if r.id not in history]
                )
            except REDIS_UNAVAILABLE:
                break  # Redis is still down: try again next round
            settled = [r.id for r in rows if r.id in seen]
            missed_ids = [r.id for r in rows if r.id not in seen]
            missed: list[Any] = []
            if missed_ids:  # whole records only for the few Redis missed
                missed = list(
                    await session.execute(
                        sa.select(Checkin, Poi.dwell_threshold_s)
                        .join(Poi, Poi.id == Checkin.poi_id)
                        .where(Checkin.id.in_(missed_ids))
                        .order_by(Checkin.id)
                    )
                )
            for record, dwell in missed:
                # Still "inside now" only if the scan is recent enough that the visit has not timed out.
                fresh = (
                    not record.late
                    and now - record.scanned_at.timestamp() < runtime.settings.presence_timeout_s
                )
                result = await count_checkin(runtime.live, record, dwell, fresh)
                if result is None:
                    redis_down = True
                    break
                counted += result in (CheckinCount.COUNTED, CheckinCount.COUNTED_AND_INSIDE)
                settled.append(record.id)
            if settled:
                await session.execute(sa.update(Checkin).where(Checkin.id.in_(settled)).values(counted=True))
                await session.commit()
            if len(rows) < batch or not settled:
                break
    if counted:
        log.info("counted %d check-ins that Redis had missed", counted)
    return counted


async def rebuild_night(runtime: Runtime, night: date) -> dict[str, int]:
    """Recount a night's check-ins and unique visitors in Redis from the database."""
    start, end = night_bounds(night)
    async with runtime.sessionmaker() as session:
        rows = await _night_checkins(session, night)
        latest = (
            sa.select(OccupancySnapshot.poi_id, sa.func.max(OccupancySnapshot.bucket).label("bucket"))
            .where(OccupancySnapshot.bucket >= start, OccupancySnapshot.bucket < end)
            .group_by(OccupancySnapshot.poi_id)
            .subquery()
        )
        floors = dict(
            (
                await session.execute(
                    sa.select(OccupancySnapshot.poi_id, OccupancySnapshot.entries_tonight).join(
                        latest,
                        sa.and_(
                            OccupancySnapshot.poi_id == latest.c.poi_id,
                            OccupancySnapshot.bucket == latest.c.bucket,
                        ),
                    )
                )
            )
            .tuples()
            .all()
        )
    report = await runtime.live.rebuild_night(night, [_recount_args(r) for r in rows], floors)
    # A check-in stored after the read above may have been counted by its request before the rebuild
    # emptied its shard. Every shard is rebuilt now, so a second read finds all of those; counting is
    # idempotent per record, so one counted meanwhile by its request stays counted once.
    read = {r.id for r in rows}
    async with runtime.sessionmaker() as session:
        newcomers = [r for r in await _night_checkins(session, night) if r.id not in read]
    await runtime.live.recount(night, [_recount_args(r) for r in newcomers])
    uncounted = [r.id for r in rows + newcomers if not r.counted]
    async with runtime.sessionmaker() as session:
        for i in range(0, len(uncounted), 500):
            await session.execute(
                sa.update(Checkin).where(Checkin.id.in_(uncounted[i : i + 500])).values(counted=True)
            )
        await session.commit()
    return {**report, "checkins": len(rows) + len(newcomers), "marked_counted": len(uncounted)}


async def _night_checkins(session: AsyncSession, night: date) -> list[Any]:
    return list(
        await session.execute(
            sa.select(
                Checkin.id,
                Checkin.session_id,
                Checkin.poi_id,
                Checkin.checkpoint_id,
                Checkin.visitor,
                Checkin.counted,
            )
            .where(Checkin.night == night)
            .order_by(Checkin.id)
        )
    )


def _recount_args(row: Any) -> tuple[int, str, str, str, str]:
    return row.id, row.session_id, row.poi_id, str(row.checkpoint_id), row.visitor
