"""The routes feature's RouteDirectory: the route facts the live path needs, held in memory.

Each ping batch and check-in of a session on a route reports progress along its stops, and the
operators' live summary counts active sessions per published route. Neither may cost a database
round trip, so every worker keeps the stops of every route and the ids of the published ones,
reloaded whenever the catalogue change sequence moves: the runtime's one-second catalogue poll
(the same one that rebuilds the geofence index) and, on the worker that wrote, at once.

Starting a session is not the hot path: :meth:`RouteDirectory.validate_for_session` reads the
route from the database, so a route published a moment ago on another worker is accepted at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tourapi.db.models import Poi, Route, RouteStop
from tourapi.domain.routes.schedule import build_itinerary, start_windows
from tourapi.domain.routes.views import leg_specs, stop_specs
from tourapi.errors import Unprocessable

log = logging.getLogger("tourapi.routes")
PUBLISHED = "published"
# The slowest pace: a session must outlast the slowest visitor who starts at the last moment.
LATEST_FINISH_PACE = "slow"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    version: int  # the catalogue sequence it was loaded at
    stops: dict[str, tuple[str, ...]] = field(default_factory=dict)
    published: tuple[str, ...] = ()


class RouteDirectory:
    """Stop POI ids of every route still stored, and the published route ids, by catalogue version.

    Withdrawn and soft-deleted routes keep their stops here, so sessions already following one
    when an operator withdraws it mid-night keep their progress; only published routes are
    counted in the live summary and accepted for new sessions.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._lock = asyncio.Lock()
        self._snapshot = _Snapshot(version=-1)

    @property
    def version(self) -> int:
        return self._snapshot.version

    async def refresh(self, catalog_seq: int) -> bool:
        """Reload when the catalogue moved past what is held; returns whether it reloaded."""
        if catalog_seq == self._snapshot.version:
            return False
        async with self._lock:
            if catalog_seq == self._snapshot.version:
                return False
            async with self._sessionmaker() as session:
                routes = (await session.execute(select(Route.id, Route.status, Route.deleted_at))).all()
                rows = (
                    await session.execute(
                        select(RouteStop.route_id, RouteStop.poi_id).order_by(
                            RouteStop.route_id, RouteStop.position
                        )
                    )
                ).all()
            stops: dict[str, list[str]] = {r.id: [] for r in routes}
            for route_id, poi_id in rows:
                stops.setdefault(route_id, []).append(poi_id)
            published = tuple(sorted(r.id for r in routes if r.status == PUBLISHED and r.deleted_at is None))
            self._snapshot = _Snapshot(catalog_seq, {k: tuple(v) for k, v in stops.items()}, published)
        log.info(
            "route directory loaded: %d routes (%d published) at version %d",
            len(stops),
            len(published),
            catalog_seq,
        )
        return True

    def stop_pois(self, route_id: str) -> list[str] | None:
        """The route's stops' POI ids in order; None for a route this worker does not know."""
        stops = self._snapshot.stops.get(route_id)
        return list(stops) if stops is not None else None

    def route_ids(self) -> list[str]:
        """Published routes, sorted: the per-route live counts."""
        return list(self._snapshot.published)

    async def validate_for_session(
        self, session: AsyncSession, route_id: str, night: date, default_end: datetime
    ) -> datetime:
        """Refuse (422, field ``route_id``) a route that is not published or does not run that night.

        Returns when the route is over that night: the slow-pace finish of a visitor who starts
        as the night's last start window closes, but never later than ``default_end`` (a session
        on a route does not outlive one without). The caller adds the grace period.
        """
        route = await session.get(Route, route_id)
        if route is None or route.deleted_at is not None or route.status != PUBLISHED:
            raise Unprocessable(f"no published route {route_id!r}", field="route_id")
        windows = start_windows(route.schedule, night)
        if not windows:
            raise Unprocessable(
                f"route {route_id!r} does not run on the night of {night.isoformat()} ({route.schedule}); "
                f"GET /v1/routes?date={night.isoformat()} lists the routes that do",
                field="route_id",
                slug="route-not-running",
            )
        ids = sorted({stop.poi_id for stop in route.stops})
        pois = {p.id: p for p in (await session.scalars(select(Poi).where(Poi.id.in_(ids)))).all()}
        last_start = windows[-1][1]
        itinerary = build_itinerary(
            night=night,
            stops=stop_specs(route, pois, ("en",)),
            legs=leg_specs(route),
            pace=LATEST_FINISH_PACE,
            start=last_start,
            route_schedule=route.schedule,
        )
        return min(max(itinerary.end, last_start), default_end)
