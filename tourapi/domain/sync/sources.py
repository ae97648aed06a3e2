"""The catalogue's own sync sources (POIs and routes) and the language-neutral POI record
shared by the sync feed and the offline bundles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Poi, Route
from tourapi.domain.routes.views import route_content
from tourapi.domain.sync.registry import register_sync_source
from tourapi.geo.geometry import to_geojson


def poi_record(poi: Poi) -> dict[str, Any]:
    """A POI as a GeoJSON Feature with every locale; no clock-dependent fields (open_now).

    A bundle may still name a POI that was deleted after its route was written: it is marked.
    """
    record = {
        "type": "Feature",
        "id": poi.id,
        "geometry": to_geojson(poi.location),
        "properties": {
            "category": poi.category,
            "name": poi.name,
            "description": poi.description,
            "opening_hours": poi.opening_hours,
            "geofence": to_geojson(poi.geofence),
            "capacity": poi.capacity,
            "dwell_threshold_s": poi.dwell_threshold_s,
            "interest": poi.interest,
            "visit_minutes": poi.visit_minutes,
            "tags": poi.tags,
            "media": poi.media,
        },
    }
    if poi.deleted_at is not None:
        record["properties"]["deleted"] = True
    return record


async def route_records(session: AsyncSession, routes: Sequence[Route]) -> list[dict[str, Any]]:
    ids = sorted({stop.poi_id for route in routes for stop in route.stops})
    pois = {p.id: p for p in (await session.scalars(select(Poi).where(Poi.id.in_(ids)))).all()} if ids else {}
    return [route_content(route, pois) for route in routes]


def route_visible(route: Route) -> bool:
    return route.deleted_at is None and route.status == "published"


register_sync_source("pois", Poi, poi_record)
register_sync_source("routes", Route, serialize_many=route_records, visible=route_visible)
