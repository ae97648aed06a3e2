"""What the planner reads from the catalogue: venues, and the shows and boats of published routes.

Plain frozen dataclasses, so the planning itself (planner.py) is pure and runs in a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Poi, Route
from tourapi.domain.routes.schedule import DETOUR_FACTOR, EventSpec, path_length_m, start_windows
from tourapi.geo.geometry import haversine_m

PUBLISHED = "published"


@dataclass(frozen=True, slots=True)
class Venue:
    id: str
    category: str
    name: dict[str, str]
    lon: float
    lat: float
    opening_hours: str | None
    capacity: int
    interest: float
    visit_minutes: int


@dataclass(frozen=True, slots=True)
class Show:
    """A performance programme at a venue: every clock time any running route lists for it."""

    poi_id: str
    key: str  # stable identity: venue + name + duration
    name: dict[str, str]
    spec: EventSpec


@dataclass(frozen=True, slots=True)
class BoatLine:
    """Departures of a boat leg: board at ``pier_id`` (``boarding_minutes`` before), land at ``dest_id``."""

    pier_id: str
    dest_id: str
    key: str
    name: dict[str, str]
    spec: EventSpec
    boarding_minutes: int
    cruise_minutes: int
    distance_m: float
    distance_source: str  # path | great_circle


@dataclass(frozen=True, slots=True)
class Catalogue:
    venues: dict[str, Venue]  # live (not deleted) POIs
    deleted: frozenset[str]
    shows: tuple[Show, ...]
    boats: tuple[BoatLine, ...]


async def load_catalogue(session: AsyncSession, nights: list[date]) -> Catalogue:
    """Live POIs, and the shows and boat departures of published routes that run on one of ``nights``."""
    rows = (
        await session.execute(
            select(
                Poi.id,
                Poi.category,
                Poi.name,
                Poi.lon,
                Poi.lat,
                Poi.opening_hours,
                Poi.capacity,
                Poi.interest,
                Poi.visit_minutes,
                Poi.deleted_at,
            ).order_by(Poi.id)
        )
    ).all()
    venues = {
        r.id: Venue(
            r.id,
            r.category,
            dict(r.name or {}),
            float(r.lon),
            float(r.lat),
            r.opening_hours,
            int(r.capacity),
            float(r.interest),
            int(r.visit_minutes),
        )
        for r in rows
        if r.deleted_at is None
    }
    deleted = frozenset(r.id for r in rows if r.deleted_at is not None)
    routes = (
        await session.scalars(
            select(Route).where(Route.status == PUBLISHED, Route.deleted_at.is_(None)).order_by(Route.id)
        )
    ).all()
    running = [r for r in routes if any(start_windows(r.schedule, night) for night in nights)]
    shows, boats = events_of(running, venues)
    return Catalogue(venues, deleted, shows, boats)


def _spec(event: dict[str, Any], times: set[str]) -> EventSpec:
    return EventSpec(
        name="",
        kind=event["kind"],
        times=tuple(sorted(times)),
        duration_minutes=int(event.get("duration_minutes") or 0),
    )


def _clock_times(event: dict[str, Any]) -> set[str]:
    spec = EventSpec(
        name="",
        kind=event["kind"],
        times=tuple(event.get("times") or ()),
        start=event.get("start"),
        end=event.get("end"),
        every_minutes=event.get("every_minutes"),
    )
    return set(spec.clock_times())


def events_of(routes: list[Route], venues: dict[str, Venue]) -> tuple[tuple[Show, ...], tuple[BoatLine, ...]]:
    """Shows and boat lines of the given routes, merged across routes (same venue, name and duration)."""
    show_times: dict[tuple[str, str, int], set[str]] = {}
    show_event: dict[tuple[str, str, int], dict[str, Any]] = {}
    boat_times: dict[tuple[str, str, str, int, int], set[str]] = {}
    boat_meta: dict[tuple[str, str, str, int, int], tuple[dict[str, Any], float, str]] = {}
    for route in routes:
        stops, legs = route.stops, route.legs
        for i, stop in enumerate(stops):
            for event in stop.events or []:
                name_key = json.dumps(event.get("name") or {}, sort_keys=True, ensure_ascii=False)
                duration = int(event.get("duration_minutes") or 0)
                if event.get("kind", "performance") == "performance":
                    key = (stop.poi_id, name_key, duration)
                    show_times.setdefault(key, set()).update(_clock_times(event))
                    show_event.setdefault(key, event)
                    continue
                leg = legs[i] if i < len(legs) else None
                if leg is None or leg.mode != "boat" or not leg.duration_minutes or i + 1 >= len(stops):
                    continue  # boat departures only mean something before a boat leg
                dest = stops[i + 1].poi_id
                bkey = (stop.poi_id, dest, name_key, stop.dwell_minutes, leg.duration_minutes)
                boat_times.setdefault(bkey, set()).update(_clock_times(event))
                if bkey not in boat_meta:
                    boat_meta[bkey] = (event, *_leg_distance(leg, stop.poi_id, dest, venues))
    shows = tuple(
        Show(
            poi,
            f"{poi}|{name_key}|{duration}",
            dict(show_event[key].get("name") or {}),
            _spec(show_event[key], show_times[key]),
        )
        for key in sorted(show_times)
        for poi, name_key, duration in [key]
    )
    boats = tuple(
        BoatLine(
            pier_id=pier,
            dest_id=dest,
            key=f"{pier}|{dest}|{name_key}|{boarding}|{cruise}",
            name=dict(boat_meta[key][0].get("name") or {}),
            spec=_spec(boat_meta[key][0], boat_times[key]),
            boarding_minutes=boarding,
            cruise_minutes=cruise,
            distance_m=boat_meta[key][1],
            distance_source=boat_meta[key][2],
        )
        for key in sorted(boat_times)
        for pier, dest, name_key, boarding, cruise in [key]
    )
    return shows, boats


def _leg_distance(leg: Any, a: str, b: str, venues: dict[str, Venue]) -> tuple[float, str]:
    """The same rule as the route schedule: the path's length, or great circle x DETOUR_FACTOR."""
    if leg.path is not None and len(leg.path.coords) >= 2:
        return path_length_m([(float(x), float(y)) for x, y, *_ in leg.path.coords]), "path"
    va, vb = venues.get(a), venues.get(b)
    if va is None or vb is None:
        return 0.0, "great_circle"
    return haversine_m(va.lon, va.lat, vb.lon, vb.lat) * DETOUR_FACTOR, "great_circle"
