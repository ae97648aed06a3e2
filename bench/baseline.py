"""The baselines every benchmark figure is divided by, served exactly like the API (granian, 1 worker).

* ``GET /hello``: a bare Litestar endpoint returning a small JSON.
* ``GET /redis``: a bare Litestar endpoint doing one Redis round trip.
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from litestar import Litestar, get


def app_factory() -> Litestar:
    client = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)

    @get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @get("/redis")
    async def redis_floor() -> dict[str, str | None]:
        return {"value": await client.get("bench:floor")}

    return Litestar([hello, redis_floor])
