"""Fixed-window rate limits in Redis, shared by every worker.

``acquire`` counts an attempt in each limit's current window (INCR + EXPIRE in one MULTI, so concurrent
attempts cannot slip past the check) and answers 429 with Retry-After when a window is full.
``refund`` takes a successful attempt back out, so in effect only failures (guesses) are limited.
All keys share the ``{rl}`` hash tag: one MULTI stays on one Redis Cluster node.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from tourapi.errors import TooManyRequests

log = logging.getLogger("tourapi.checkins.ratelimit")


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str  # what the subject is: "session", "ip", ...
    limit: int  # attempts per window
    window_s: int


def ip_subject(host: str | None) -> str:
    """An IPv4 address, or the /64 of an IPv6 address (one subscriber usually holds a whole /64)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class FixedWindowLimiter:
    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self.redis = client
        self.namespace = namespace

    def key(self, name: str, limit: Limit, subject: str, window: int) -> str:
        return f"{self.namespace}:{{rl}}:{name}:{limit.scope}:{subject}:{window}"

    async def acquire(
        self, name: str, subjects: dict[str, str], limits: tuple[Limit, ...], now: float, what: str
    ) -> list[str]:
        keys: list[str] = []
        pipe = self.redis.pipeline(transaction=True)
        for limit in limits:
            window = int(now // limit.window_s)
            key = self.key(name, limit, subjects[limit.scope], window)
            keys.append(key)
            pipe.incr(key)
            pipe.expireat(key, (window + 2) * limit.window_s)
        results = await pipe.execute()
        for n, limit in enumerate(limits):
            if int(results[2 * n]) > limit.limit:
                retry = max(1, math.ceil((int(now // limit.window_s) + 1) * limit.window_s - now))
                raise TooManyRequests(
                    f"too many {what} from this {limit.scope}; try again in {retry} s",
                    headers={"Retry-After": str(retry)},
                    limit=limit.limit,
                    window_s=limit.window_s,
                )
        return keys

    async def refund(self, keys: list[str]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=True)
            for key in keys:
                pipe.decr(key)
            await pipe.execute()
        except redis.exceptions.RedisError as exc:  # a lost refund only makes the limit a little stricter
            log.warning("rate-limit refund failed: %s", type(exc).__name__)
