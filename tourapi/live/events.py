"""The operators' event stream: one capped Redis stream that every API worker reads.

The leader's aggregator appends per-tick aggregates (never individual visitors), crowd-level
changes and alerts; SSE connections on any worker read it, and resume after a reconnect from
the stream id they last saw (Last-Event-ID).
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis.asyncio as aioredis

STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class LiveEvents:
    def __init__(self, redis: aioredis.Redis, stream_key: str, maxlen: int) -> None:
        self.redis = redis
        self.key = stream_key
        self.maxlen = maxlen

    async def publish(self, kind: str, data: dict[str, Any]) -> str:
        return await self.redis.xadd(
            self.key,
            {"kind": kind, "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False)},
            maxlen=self.maxlen,
            approximate=True,
        )

    async def last_id(self) -> str:
        newest = await self.redis.xrevrange(self.key, count=1)
        return newest[0][0] if newest else "0-0"

    async def oldest_id(self) -> str | None:
        oldest = await self.redis.xrange(self.key, count=1)
        return oldest[0][0] if oldest else None

    async def after(self, last_id: str, count: int = 500) -> list[tuple[str, str, dict[str, Any]]]:
        """Events strictly after ``last_id`` (non-blocking)."""
        entries = await self.redis.xrange(self.key, min=f"({last_id}", count=count)
        return [(eid, f["kind"], json.loads(f["data"])) for eid, f in entries]
