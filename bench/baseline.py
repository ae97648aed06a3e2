"""The baselines every benchmark figure is divided by, served exactly like the API (granian, 1 worker).

* ``GET /hello``: a bare Litestar endpoint returning a small JSON.
* ``GET /redis``: a bare Litestar endpoint doing one Redis round trip.
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from litestar import Litestar, get


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

    return Litestar([hello, redis_floor])
