"""Everything a worker process holds: connections, keys, the geofence index and background loops.

One ``Runtime`` is created by ``create_app(settings)`` and started/stopped by
the app's lifespan. Services receive it through dependency injection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
import redis.asyncio as aioredis
from litestar.security.jwt import JWTAuth, Token
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tourapi.db.engine import make_engine, make_sessionmaker
from tourapi.db.models import Poi
from tourapi.db.sync import current_sync_seq
from tourapi.geo.backend import SpatialBackend, backend_for
from tourapi.geo.index import FenceSource, GeofenceIndex
from tourapi.live.events import LiveEvents
from tourapi.live.jobs import LiveJobs
from tourapi.live.store import LiveStore
from tourapi.security.keys import Keyring, load_keyring
from tourapi.security.principal import Principal
from tourapi.security.tokens import make_jwt_auth
from tourapi.settings import Settings
from tourapi.web.ratelimit import PINGS_PER_MIN, FixedWindowLimiter, Limit

log = logging.getLogger("tourapi.runtime")
POLL_INTERVAL_S = 1.0


def make_redis(settings: Settings) -> aioredis.Redis:
    if settings.redis_url is None:
        import fakeredis

        return fakeredis.FakeAsyncRedis(decode_responses=True)
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(  # type: ignore[return-value]
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            max_connections=256,
        )
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        max_connections=256,
    )


class FenceIndexHolder:
    """The current GeofenceIndex, rebuilt in a thread when the POIs' change sequence moves."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], margin_m: float) -> None:
        self._sessionmaker = sessionmaker
        self._margin_m = margin_m
        self._lock = asyncio.Lock()
        self.index = GeofenceIndex.build([], version=-1, margin_m=margin_m)

    async def refresh(self) -> bool:
        async with self._lock, self._sessionmaker() as session:
            version = int(await session.scalar(select(func.coalesce(func.max(Poi.sync_seq), 0))) or 0)
            if version == self.index.version:
                return False
            rows = (
                await session.execute(
                    select(
                        Poi.id, Poi.geofence, Poi.opening_hours, Poi.capacity, Poi.dwell_threshold_s
                    ).where(Poi.deleted_at.is_(None))
                )
            ).all()
        sources = [
            FenceSource(r.id, r.geofence, r.opening_hours, r.capacity, r.dwell_threshold_s) for r in rows
        ]
        self.index = await anyio.to_thread.run_sync(GeofenceIndex.build, sources, version, self._margin_m)
        log.info("geofence index rebuilt: %d fences at version %d", len(sources), version)
        return True


class Runtime:
    """A plain class on purpose: handler signatures name it, and it must not look like a data model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine = make_engine(settings)
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.redis: aioredis.Redis = make_redis(settings)
        self.spatial: SpatialBackend = backend_for(settings.database_url)
        self.keyring = Keyring(master=settings.resolved_secret().encode())
        self.jwt: JWTAuth[Principal, Token] = make_jwt_auth(
            self.keyring, settings.jwt_issuer, timedelta(seconds=settings.access_token_ttl_s)
        )
        self.fences = FenceIndexHolder(self.sessionmaker, settings.hysteresis_m)
        self.live = LiveStore(self.redis, settings, settings.resolved_secret())
        self.limiter = FixedWindowLimiter(self.redis, settings.redis_namespace, settings.rate_limit_scale)
        self.ping_limits = {
            scope: self.limiter.allowed(Limit(scope, n, 60)) for scope, n in PINGS_PER_MIN.items()
        }
        from tourapi.domain.routes.directory import RouteDirectory  # the feature imports this module

        self.routes = RouteDirectory(self.sessionmaker)
        # Reloaded with the fence index; bound now, so a test may swap ``routes`` for a stub.
        self._refresh_routes = self.routes.refresh
        self.events = LiveEvents(
            self.redis, self.live.keys.global_key("events"), settings.event_stream_maxlen
        )
        self.jobs = LiveJobs(self)
        # The catalogue change sequence as last seen by this worker (polled each second): cheap
        # version checks (bundle ETags) without a database round trip.
        self.catalog_seq = -1
        # Feature modules register periodic jobs here: (name, interval seconds, coroutine factory).
        self.periodic: list[tuple[str, float, Callable[[], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._started = False
        self.every("catalog-poll", POLL_INTERVAL_S, self._poll_catalog)
        self.jobs.register()

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        return cls(settings)

    async def reload_keys(self) -> None:
        async with self.sessionmaker() as session:
            self.keyring.replace(await load_keyring(session, self.settings.resolved_secret()))

    async def start(self) -> None:
        from tourapi.bootstrap import create_embedded_schema, seed_rows

        if self.settings.embedded_database:
            await create_embedded_schema(self.engine)
        async with self.sessionmaker() as session:
            try:
                await seed_rows(session)
            except IntegrityError:  # another worker seeded at the same moment
                await session.rollback()
        self._started = True
        await self._poll_catalog()
        for name, interval, job in self.periodic:
            self._tasks.append(asyncio.create_task(self._loop(name, interval, job), name=name))

    def every(self, name: str, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
        self.periodic.append((name, interval_s, job))

    async def _poll_catalog(self) -> None:
        async with self.sessionmaker() as session:
            self.catalog_seq = await current_sync_seq(session)
        await self.fences.refresh()
        await self._refresh_routes(self.catalog_seq)
        await self.reload_keys()

    @staticmethod
    async def _loop(name: str, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a loop must survive a Redis or database outage
                log.warning("periodic job %s failed: %s: %s", name, type(exc).__name__, exc)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a job stuck in a driver call must not hold up a worker's shutdown.
            _, stuck = await asyncio.wait(self._tasks, timeout=5)
            for task in stuck:
                log.warning("periodic job %s did not stop within 5 s: %s", task.get_name(), task.get_stack())
        self._tasks.clear()
        self._started = False
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        await self.engine.dispose()

    async def catalog_changed(self) -> None:
        """Called after a catalogue commit: this worker refreshes now, the others within a poll interval."""
        if self._started:
            async with self.sessionmaker() as session:
                self.catalog_seq = await current_sync_seq(session)
            await self.fences.refresh()
            await self._refresh_routes(self.catalog_seq)
