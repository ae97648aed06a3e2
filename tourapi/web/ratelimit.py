"""Fixed-window rate limits in Redis, shared by every worker.

``acquire`` counts an attempt in each limit's current window (INCR + EXPIREAT, pipelined: one round
trip) and answers 429 with Retry-After when a window is full. ``refund`` takes a successful attempt
back out, for limits that should count only failures (password and manual-code guesses).
Each key carries its subject as hash tag, so limits spread over a Redis Cluster.

The limits live in ``LIMITS`` below; ``TOURAPI_RATE_LIMIT_SCALE`` multiplies them all (load tests and
the demo traffic raise it). Pings are limited inside the ping script instead (no extra round trip).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from tourapi.errors import TooManyRequests

log = logging.getLogger("tourapi.ratelimit")
REDIS_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str  # what the subject is: "session", "install", "ip", "user", ...
    limit: int  # attempts per window
    window_s: int


# What each kind of attempt may do per subject. Visitors behind one carrier NAT share an IP, so IP
# limits are generous and the tight limits are per session or install.
LIMITS: dict[str, tuple[Limit, ...]] = {
    "session-start": (Limit("ip", 120, 60), Limit("install", 10, 60)),
    "login": (Limit("ip", 30, 60), Limit("user", 10, 600)),  # failed logins only (refunded on success)
    "checkin": (Limit("session", 120, 60), Limit("install", 240, 60), Limit("ip", 1200, 60)),
    "manual-code": (Limit("session", 10, 600), Limit("install", 20, 600), Limit("ip", 60, 600)),  # failures
    "plan": (Limit("ip", 60, 60),),
}
# Pings (enforced in tourapi/live/lua/ping.lua): pings per minute per session and per install.
PINGS_PER_MIN = {"session": 600, "install": 1200}


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
    def __init__(self, client: aioredis.Redis, namespace: str, scale: float = 1.0) -> None:
        self.redis = client
        self.namespace = namespace
        self.scale = scale

    def key(self, name: str, limit: Limit, subject: str, window: int) -> str:
        return f"{self.namespace}:{{rl:{limit.scope}:{subject}}}:{name}:{window}"

    def allowed(self, limit: Limit) -> int:
        return max(1, math.floor(limit.limit * self.scale))

    async def acquire(self, name: str, subjects: dict[str, str], now: float, what: str) -> list[str]:
        limits = tuple(limit for limit in LIMITS[name] if limit.scope in subjects)
        keys: list[str] = []
        pipe = self.redis.pipeline(transaction=False)
        for limit in limits:
            window = int(now // limit.window_s)
            key = self.key(name, limit, subjects[limit.scope], window)
            keys.append(key)
            pipe.incr(key)
            pipe.expireat(key, (window + 2) * limit.window_s)
        results = await pipe.execute()
        for n, limit in enumerate(limits):
            if int(results[2 * n]) > self.allowed(limit):
                retry = max(1, math.ceil((int(now // limit.window_s) + 1) * limit.window_s - now))
                raise TooManyRequests(
                    f"too many {what} from this {limit.scope}; try again in {retry} s",
                    headers={"Retry-After": str(retry)},
                    limit=self.allowed(limit),
                    window_s=limit.window_s,
                )
        return keys

    async def acquire_or_skip(self, name: str, subjects: dict[str, str], now: float, what: str) -> None:
        """``acquire`` for work that can go on without Redis (the planner): when Redis is down the request
        goes on unlimited rather than failing, and the request's work bounds still cap its cost."""
        try:
            await self.acquire(name, subjects, now, what)
        except REDIS_UNAVAILABLE as exc:
            log.warning("%s rate limit skipped (Redis unavailable: %s)", name, type(exc).__name__)

    async def forget(self, scope: str, subject: str, now: float) -> None:
        """Delete a subject's counters (erasure): every limit with that scope, current and previous window."""
        keys = [
            self.key(name, limit, subject, int(now // limit.window_s) - back)
            for name, limits in LIMITS.items()
            for limit in limits
            if limit.scope == scope
            for back in (0, 1)
        ]
        await self.redis.delete(*keys)

    async def refund(self, keys: list[str]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.decr(key)
            await pipe.execute()
        except redis.exceptions.RedisError as exc:  # a lost refund only makes the limit a little stricter
            log.warning("rate-limit refund failed: %s", type(exc).__name__)
