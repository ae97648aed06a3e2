"""Operators' live view: summary, occupancy history, alerts and the event stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Alert, OccupancySnapshot
from tourapi.errors import NotFound, Unprocessable
from tourapi.live.crowd import crowd_level
from tourapi.live.events import STREAM_ID
from tourapi.live.jobs import alert_json
from tourapi.runtime import Runtime
from tourapi.timeutil import TZ, night_of

KEEPALIVE_S = 15.0
POLL_S = 0.25


async def summary(runtime: Runtime) -> dict[str, Any]:
    """Everything the console's table needs, from Redis in a fixed number of pipelined round trips."""
    now = time.time()
    live = runtime.live
    k = live.keys
    route_ids = runtime.routes.route_ids()
    pipe = runtime.redis.pipeline(transaction=False)
    for shard in k.all_shards():
        pipe.zcount(k.active(shard), now, "+inf")
        for route_id in route_ids:
            pipe.zcount(k.route_active(shard, route_id), now, "+inf")
    counts = await pipe.execute()
    per_route = dict.fromkeys(route_ids, 0)
    total = 0
    width = 1 + len(route_ids)
    for shard in k.all_shards():
        row = counts[shard * width : (shard + 1) * width]
        total += int(row[0])
        for route_id, n in zip(route_ids, row[1:]):
            per_route[route_id] += int(n)
    occupancy = await live.occupancy()
    counters = await live.night_counters(night_of(datetime.fromtimestamp(now, UTC)))
    index = runtime.fences.index
    pois = []
    for source in index.sources:
        occ = occupancy.get(source.poi_id, 0)
        c = counters.get(source.poi_id, {})
        pois.append(
            {
                "poi_id": source.poi_id,
                "occupancy": occ,
                "capacity": source.capacity,
                "level": crowd_level(occ, source.capacity),
                "entries_tonight": c.get("entries", 0),
                "checkins_tonight": c.get("checkins", 0),
                "unique_visitors_tonight": c.get("unique", 0),
            }
        )
    return {
        "as_of": datetime.fromtimestamp(now, TZ).isoformat(),
        "night": night_of(datetime.fromtimestamp(now, UTC)).isoformat(),
        "active_sessions": {"total": total, "by_route": per_route},
        "pois": pois,
    }


async def history(runtime: Runtime, session: AsyncSession, poi_id: str, hours: float) -> dict[str, Any]:
    index = runtime.fences.index
    if poi_id not in index.position:
        raise NotFound(f"no POI with id {poi_id!r}", field="poi_id")
    interval = runtime.settings.snapshot_interval_s
    now = time.time()
    end_bucket = now - now % interval
    start_bucket = end_bucket - int(hours * 3600 // interval) * interval
    start = datetime.fromtimestamp(start_bucket, UTC)
    rows = (
        await session.scalars(
            select(OccupancySnapshot)
            .where(OccupancySnapshot.poi_id == poi_id, OccupancySnapshot.bucket >= start)
            .order_by(OccupancySnapshot.bucket)
        )
    ).all()
    by_bucket = {row.bucket.timestamp(): row.occupancy for row in rows}
    capacity = index.sources[index.position[poi_id]].capacity
    series = []
    t = start_bucket
    while t <= end_bucket:
        occ = by_bucket.get(t, 0)  # no snapshot row means nobody was there
        series.append({"t": datetime.fromtimestamp(t, TZ).isoformat(), "occupancy": occ})
        t += interval
    live_now = await runtime.live.poi_occupancy(poi_id)
    return {
        "poi_id": poi_id,
        "capacity": capacity,
        "interval_s": interval,
        "series": series,
        "live": {
            "t": datetime.fromtimestamp(now, TZ).isoformat(),
            "occupancy": live_now,
            "level": crowd_level(live_now, capacity),
        },
    }


async def alerts(session: AsyncSession, status: str) -> list[dict[str, Any]]:
    stmt = select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(500)
    if status == "open":
        stmt = stmt.where(Alert.acked_at.is_(None))
    return [alert_json(a) for a in (await session.scalars(stmt)).all()]


async def acknowledge(runtime: Runtime, session: AsyncSession, alert_id: int, who: str) -> dict[str, Any]:
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field="alert_id")
    if alert.acked_at is None:
        alert.acked_at = datetime.now(UTC)
        alert.acked_by = who
        await session.commit()
        await runtime.events.publish("alert_ack", alert_json(alert))
    return alert_json(alert)


def check_last_event_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not STREAM_ID.match(value):
        raise Unprocessable(
            "Last-Event-ID must be an id this stream sent (e.g. 1700000000000-0)", field="Last-Event-ID"
        )
    return value


async def stream(runtime: Runtime, last_event_id: str | None) -> AsyncIterator[dict[str, Any]]:
    """SSE messages: a snapshot (unless resuming), then events as they happen, with keep-alives."""
    events = runtime.events
    if last_event_id is None:
        position = await events.last_id()
        yield {"event": "snapshot", "id": position, "data": await summary(runtime)}
    else:
        position = last_event_id
        oldest = await events.oldest_id()
        if oldest is not None and _older(position, oldest):
            # The stream was trimmed past the client's position: start over with a snapshot.
            position = await events.last_id()
            yield {"event": "snapshot", "id": position, "data": await summary(runtime)}
    quiet_since = time.monotonic()
    while True:
        batch = await events.after(position)
        for event_id, kind, data in batch:
            position = event_id
            yield {"event": kind, "id": event_id, "data": data}
        if batch:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield {"comment": "keep-alive"}
        else:
            await asyncio.sleep(POLL_S)


def _older(a: str, b: str) -> bool:
    """Stream id ``a`` comes before ``b``."""
    return tuple(int(x) for x in a.split("-")) < tuple(int(x) for x in b.split("-"))
