"""The baselines every benchmark figure is divided by, served exactly like the API (granian, 1 worker).

* ``GET /hello``: a bare Litestar endpoint returning a small JSON.
* ``GET /redis``: a bare Litestar endpoint doing one Redis round trip.
* ``GET /ping-script/{session_id}``: a bare Litestar endpoint running what one ping costs in Redis, the
  live store's ping script for one ping inside the Lion Grove on a real session (no HTTP body, no token,
  no geofence lookup). It separates the ping's Redis cost from everything the API adds around it.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis
from litestar import Litestar, get

LION_GROVE = "lion-grove-garden"


def app_factory() -> Litestar:
    # The same pool bound as the API (tourapi.runtime.make_redis): 100, the default, is too few at 128 connections.
    client = aioredis.Redis.from_url(
        os.environ["BENCH_REDIS_URL"], decode_responses=True, max_connections=256
    )

    @get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @get("/redis")
    async def redis_floor() -> dict[str, str | None]:
        return {"value": await client.get("bench:floor")}

    return Litestar([hello, redis_floor, ping_script_floor(client)])


def ping_script_floor(client: aioredis.Redis) -> object:
    # The API's own settings (the benchmark gives both processes the same environment): same key layout.
    from tourapi.live.store import ClassifiedPing, LiveStore
    from tourapi.settings import Settings
    from tourapi.timeutil import night_of

    settings = Settings()
    store = LiveStore(client, settings, settings.resolved_secret())

    @get("/ping-script/{session_id:str}")
    async def ping_script(session_id: str) -> dict[str, list[str]]:
        now = time.time()
        ping = ClassifiedPing(
            ts=round(now, 3),
            night=night_of(datetime.fromtimestamp(now, UTC)),
            good=True,
            core=(LION_GROVE,),
            near=(LION_GROVE,),
        )
        outcome = await store.apply_pings(session_id, session_id, None, [ping], {LION_GROVE: 600}, now)
        return {"inside": outcome.inside}

    return ping_script
