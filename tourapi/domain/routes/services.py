"""Night routes: reads, timed schedules and validated writes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.base import utcnow
from tourapi.db.models import MediaFile, Poi, Route, RouteLeg, RouteStop
from tourapi.db.sync import next_sync_seq
from tourapi.domain.media.services import lookup
from tourapi.domain.routes.schedule import PACES, at_night, build_itinerary, start_windows
from tourapi.domain.routes.schemas import RouteCreate, RoutePatch, RouteWrite
from tourapi.domain.routes.validation import ValidRoute, snapshot_of, validate
from tourapi.domain.routes.views import leg_specs, stop_specs
from tourapi.errors import Conflict, NotFound, Unprocessable
from tourapi.geo.crs import Crs
from tourapi.geo.geometry import to_geojson
from tourapi.i18n import pick
from tourapi.runtime import Runtime
from tourapi.timeutil import TZ, night_of

PUBLISHED = "published"


def now() -> datetime:
    return datetime.now(UTC)


def tonight() -> date:
    return night_of(now())


def parse_night(value: str | None, field: str = "date") -> date:
    if value is None:
        return tonight()
    try:
        night = date.fromisoformat(value)
    except ValueError:
        raise Unprocessable("must be a date YYYY-MM-DD (the night's first day)", field=field) from None
    if not 2000 <= night.year <= 2100:
        raise Unprocessable("must be a date between 2000 and 2100", field=field)
    return night


def parse_start(night: date, value: str | None) -> datetime | None:
    """``HH:MM`` during ``night``; before 12:00 is after midnight (the night of the previous day)."""
    if value is None:
        return None
    try:
        return at_night(night, value)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="start") from None


class RouteService:
    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session

    # ---- reads -------------------------------------------------------------------------------------------

    async def get(self, route_id: str, *, drafts: bool = False) -> Route:
        route = await self.session.get(Route, route_id)
        if route is None or route.deleted_at is not None or (route.status != PUBLISHED and not drafts):
            raise NotFound(f"no route with id {route_id!r}", field="id")
        return route

    async def pois_for(self, routes: list[Route]) -> dict[str, Poi]:
        ids = sorted({stop.poi_id for route in routes for stop in route.stops})
        if not ids:
            return {}
        rows = (await self.session.scalars(select(Poi).where(Poi.id.in_(ids)))).all()
        return {poi.id: poi for poi in rows}

    async def listing(
        self, night: date | None, *, drafts: bool = False
    ) -> list[tuple[Route, list[tuple[datetime, datetime]] | None]]:
        """Routes (published unless ``drafts``) with their start windows that night; only those that run."""
        stmt = select(Route).where(Route.deleted_at.is_(None)).order_by(Route.id)
        if not drafts:
            stmt = stmt.where(Route.status == PUBLISHED)
        routes = list((await self.session.scalars(stmt)).all())
        if night is None:
            return [(route, None) for route in routes]
        out = []
        for route in routes:
            windows = start_windows(route.schedule, night)
            if windows:
                out.append((route, windows))
        return out

    async def schedule(
        self,
        route_id: str,
        night: date,
        start: str | None,
        pace: str,
        chain: tuple[str, ...],
        *,
        drafts: bool = False,
    ) -> dict[str, Any]:
        if pace not in PACES:
            raise Unprocessable(f"pace must be one of: {', '.join(PACES)}", field="pace")
        route = await self.get(route_id, drafts=drafts)
        pois = await self.pois_for([route])
        itinerary = build_itinerary(
            night=night,
            stops=stop_specs(route, pois, chain),
            legs=leg_specs(route),
            pace=pace,
            start=parse_start(night, start),
            route_schedule=route.schedule,
        )
        name, lang = pick(route.name, chain)
        return {
            "route_id": route.id,
            "name": name,
            "lang": lang,
            "schedule": route.schedule,
            "timezone": str(TZ),
            **itinerary.to_dict(),
        }

    # ---- writes ------------------------------------------------------------------------------------------

    async def create(self, data: RouteCreate) -> Route:
        if not data.id:
            raise Unprocessable("id is required", field="id")
        existing = await self.session.get(Route, data.id)
        if existing is not None and existing.deleted_at is None:
            raise Conflict(f"a route with id {data.id!r} already exists", field="id")
        valid = await self._validated(data)
        route = existing or Route(id=data.id)
        await self._apply(route, valid)
        route.deleted_at = None
        if existing is None:
            self.session.add(route)
        return await self._commit(route)

    async def replace(self, route_id: str, data: RouteWrite) -> Route:
        route = await self.get(route_id, drafts=True)
        valid = await self._validated(data)
        await self._apply(route, valid)
        return await self._commit(route)

    async def patch(self, route_id: str, data: RoutePatch) -> Route:
        route = await self.get(route_id, drafts=True)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        merged = current_as_write(route)
        merged.update(changes)
        # crs describes the coordinates sent in this body; kept paths are already WGS-84.
        merged["crs"] = changes.get("crs", Crs.WGS84) if "legs" in changes else Crs.WGS84
        write = msgspec.convert(msgspec.to_builtins(merged), RouteWrite, from_attributes=True)
        valid = await self._validated(write)
        await self._apply(route, valid)
        return await self._commit(route)

    async def delete(self, route_id: str) -> None:
        route = await self.get(route_id, drafts=True)
        seq = await next_sync_seq(self.session)
        route.deleted_at = route.updated_at = utcnow()
        route.sync_seq = seq
        await self.session.commit()
        await self.runtime.catalog_changed()

    async def upsert(self, route_id: str, data: RouteWrite) -> bool:
        """Insert or update without conflict errors (fixtures); returns whether anything changed."""
        valid = await self._validated(data)
        route = await self.session.get(Route, route_id)
        if (
            route is not None
            and route.deleted_at is None
            and snapshot_of(valid) == snapshot_of(_stored(route))
        ):
            return False
        is_new = route is None
        route = route or Route(id=route_id)
        await self._apply(route, valid)
        route.deleted_at = None
        if is_new:
            self.session.add(route)
        await self._commit(route)
        return True

    async def _validated(self, data: RouteWrite) -> ValidRoute:
        poi_ids = sorted({s.poi_id for s in data.stops})
        rows = (await self.session.scalars(select(Poi).where(Poi.id.in_(poi_ids)))).all()
        media: dict[str, MediaFile] = await lookup(self.session, [data.cover.sha256] if data.cover else [])
        return validate(data, {p.id: p for p in rows}, media, tonight())

    async def _apply(self, route: Route, valid: ValidRoute) -> None:
        with self.session.no_autoflush:
            seq = await next_sync_seq(self.session)
        for key, value in valid.fields.items():
            setattr(route, key, value)
        route.stops = [RouteStop(position=i, **stop) for i, stop in enumerate(valid.stops)]
        route.legs = [RouteLeg(position=i, **leg) for i, leg in enumerate(valid.legs)]
        route.updated_at = utcnow()
        route.sync_seq = seq

    async def _commit(self, route: Route) -> Route:
        await self.session.commit()
        await self.runtime.catalog_changed()
        return route


def _stored(route: Route) -> ValidRoute:
    fields = {
        key: getattr(route, key)
        for key in (
            "name",
            "summary",
            "accessibility",
            "theme",
            "status",
            "difficulty",
            "tags",
            "schedule",
            "cover",
        )
    }
    stops = [
        {"poi_id": s.poi_id, "dwell_minutes": s.dwell_minutes, "events": s.events, "note": s.note}
        for s in route.stops
    ]
    legs = [
        {"mode": leg.mode, "path": leg.path, "duration_minutes": leg.duration_minutes, "note": leg.note}
        for leg in route.legs
    ]
    return ValidRoute(fields, stops, legs)


def current_as_write(route: Route) -> dict[str, Any]:
    """The stored route as a RouteWrite body (for PATCH)."""
    cover = None
    if route.cover:
        cover = {"sha256": route.cover["sha256"], "alt": route.cover.get("alt") or {}}
    events_in = ("name", "kind", "times", "start", "end", "every_minutes", "duration_minutes", "place")
    return {
        "name": route.name,
        "summary": route.summary,
        "theme": route.theme,
        "schedule": route.schedule,
        "status": route.status,
        "difficulty": route.difficulty,
        "accessibility": route.accessibility,
        "cover": cover,
        "tags": route.tags,
        "stops": [
            {
                "poi_id": s.poi_id,
                "dwell_minutes": s.dwell_minutes,
                "note": s.note,
                "events": [
                    {k: v for k, v in e.items() if k in events_in and v is not None and v != []}
                    for e in s.events
                ],
            }
            for s in route.stops
        ],
        "legs": [
            {
                "mode": leg.mode,
                "path": to_geojson(leg.path, precision=12) if leg.path is not None else None,
                "duration_minutes": leg.duration_minutes,
                "note": leg.note,
            }
            for leg in route.legs
        ],
        "crs": Crs.WGS84,
    }
