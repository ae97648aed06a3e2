"""What routes look like on the wire: the GeoJSON Feature, list items, and the language-neutral
content shared by the sync feed and the offline bundle."""

from __future__ import annotations

from typing import Any

from shapely.geometry import LineString, MultiLineString

from tourapi.db.models import Poi, Route, RouteLeg
from tourapi.domain.routes.schedule import (
    DETOUR_FACTOR,
    LegSpec,
    StopSpec,
    iso,
    leg_distance,
    travel_seconds,
)
from tourapi.domain.routes.validation import spec_of
from tourapi.geo.crs import Crs, geometry_from_wgs84
from tourapi.geo.geometry import to_geojson
from tourapi.i18n import pick
from tourapi.timeutil import TZ

TIMEZONE = str(TZ)


def stop_specs(route: Route, pois: dict[str, Poi], chain: tuple[str, ...]) -> list[StopSpec]:
    specs = []
    for stop in route.stops:
        poi = pois[stop.poi_id]
        specs.append(
            StopSpec(
                poi_id=poi.id,
                name=pick(poi.name, chain)[0] or poi.id,
                lon=poi.lon,
                lat=poi.lat,
                dwell_minutes=stop.dwell_minutes,
                opening_hours=poi.opening_hours,
                events=tuple(spec_of(e, chain) for e in stop.events),
            )
        )
    return specs


def leg_specs(route: Route) -> list[LegSpec]:
    return [
        LegSpec(
            mode=leg.mode,  # type: ignore[arg-type]
            path=tuple((float(x), float(y)) for x, y, *_ in leg.path.coords)
            if leg.path is not None
            else None,
            duration_s=leg.duration_minutes * 60 if leg.duration_minutes is not None else None,
        )
        for leg in route.legs
    ]


def leg_line(leg: RouteLeg, a: Poi, b: Poi) -> LineString:
    """The leg's path, or the straight segment between the two stops' points."""
    return leg.path if leg.path is not None else LineString([(a.lon, a.lat), (b.lon, b.lat)])


def _legs_out(route: Route, pois: dict[str, Poi]) -> list[dict[str, Any]]:
    out = []
    specs = stop_specs(route, pois, ("en",))
    for i, (leg, spec) in enumerate(zip(route.legs, leg_specs(route), strict=True)):
        distance, source = leg_distance(spec, specs[i], specs[i + 1])
        out.append(
            {
                "index": i,
                "from": route.stops[i].poi_id,
                "to": route.stops[i + 1].poi_id,
                "mode": leg.mode,
                "distance_m": round(distance, 1),
                "distance_source": source,
                "duration_minutes": leg.duration_minutes,
                "duration_s_normal_pace": travel_seconds(leg.mode, distance, "normal", spec.duration_s),
                "note": leg.note,
            }
        )
    return out


def event_out(event: dict[str, Any], chain: tuple[str, ...] | None) -> dict[str, Any]:
    spec = spec_of(event)
    out: dict[str, Any] = {
        "kind": event["kind"],
        "times": spec.clock_times(),
        "start": event.get("start"),
        "end": event.get("end"),
        "every_minutes": event.get("every_minutes"),
        "duration_minutes": event.get("duration_minutes") or 0,
    }
    if chain is None:
        out.update(name=event["name"], place=event.get("place") or {})
    else:
        out.update(
            name=pick(event["name"], chain)[0],
            place=pick(event.get("place") or {}, chain)[0],
            i18n={"name": event["name"], "place": event.get("place") or {}},
        )
    return out


def _geometry(route: Route, pois: dict[str, Poi], crs: Crs) -> dict[str, Any] | None:
    lines = [
        leg_line(leg, pois[route.stops[i].poi_id], pois[route.stops[i + 1].poi_id])
        for i, leg in enumerate(route.legs)
    ]
    if not lines:
        return None
    geom = MultiLineString(lines)
    return to_geojson(geom if crs is Crs.WGS84 else geometry_from_wgs84(geom, crs))


def _point(poi: Poi, crs: Crs) -> list[float]:
    return to_geojson(poi.location if crs is Crs.WGS84 else geometry_from_wgs84(poi.location, crs))[
        "coordinates"
    ]


def route_feature(route: Route, pois: dict[str, Poi], chain: tuple[str, ...], crs: Crs) -> dict[str, Any]:
    """GET /v1/routes/{id}: geometry = the legs' lines; properties = stops, legs and events."""
    name, lang = pick(route.name, chain)
    legs = _legs_out(route, pois)
    for leg in legs:
        leg["note"] = pick(leg["note"], chain)[0]
    stops, events = [], []
    for i, stop in enumerate(route.stops):
        poi = pois[stop.poi_id]
        stop_events = [event_out(e, chain) for e in stop.events]
        events.extend({"stop": i, "poi_id": poi.id, **e} for e in stop_events)
        stops.append(
            {
                "index": i,
                "poi_id": poi.id,
                "name": pick(poi.name, chain)[0],
                "category": poi.category,
                "point": _point(poi, crs),
                "opening_hours": poi.opening_hours,
                "dwell_minutes": stop.dwell_minutes,
                "events": stop_events,
                "note": pick(stop.note, chain)[0],
                **({"poi_deleted": True} if poi.deleted_at is not None else {}),
            }
        )
    cover = dict(route.cover) if route.cover else None
    if cover is not None:
        cover["alt"] = pick(cover.get("alt") or {}, chain)[0]
    return {
        "type": "Feature",
        "id": route.id,
        "geometry": _geometry(route, pois, crs),
        "properties": {
            "name": name,
            "summary": pick(route.summary, chain)[0],
            "lang": lang,
            "i18n": {
                "name": route.name,
                "summary": route.summary,
                "accessibility": route.accessibility,
            },
            "status": route.status,
            "theme": route.theme,
            "difficulty": route.difficulty,
            "accessibility": pick(route.accessibility, chain)[0],
            "cover": cover,
            "schedule": route.schedule,
            "timezone": TIMEZONE,
            "tags": route.tags,
            "stops": stops,
            "legs": legs,
            "events": events,
            "distance_m": round(sum(leg["distance_m"] for leg in legs), 1),
            "walking_m": round(sum(leg["distance_m"] for leg in legs if leg["mode"] == "walk"), 1),
            "updated_at": route.updated_at.isoformat(),
        },
    }


def route_list_item(
    route: Route, chain: tuple[str, ...], windows: list[tuple[Any, Any]] | None
) -> dict[str, Any]:
    name, lang = pick(route.name, chain)
    cover = dict(route.cover) if route.cover else None
    if cover is not None:
        cover["alt"] = pick(cover.get("alt") or {}, chain)[0]
    item: dict[str, Any] = {
        "id": route.id,
        "name": name,
        "summary": pick(route.summary, chain)[0],
        "lang": lang,
        "status": route.status,
        "theme": route.theme,
        "difficulty": route.difficulty,
        "accessibility": pick(route.accessibility, chain)[0],
        "cover": cover,
        "schedule": route.schedule,
        "timezone": TIMEZONE,
        "poi_ids": [s.poi_id for s in route.stops],
        "stops": len(route.stops),
        "tags": route.tags,
        "updated_at": route.updated_at.isoformat(),
        "links": {
            "self": f"/v1/routes/{route.id}",
            "schedule": f"/v1/routes/{route.id}/schedule",
            "bundle": f"/v1/routes/{route.id}/bundle",
        },
    }
    if windows is not None:
        item["start_windows"] = [{"start": iso(a), "end": iso(b)} for a, b in windows]
    return item


def route_content(route: Route, pois: dict[str, Poi]) -> dict[str, Any]:
    """Language-neutral, deterministic route record (sync feed and bundle). No timestamps."""
    legs = _legs_out(route, pois)
    for leg, row in zip(legs, route.legs, strict=True):
        leg["path"] = to_geojson(row.path) if row.path is not None else None
    return {
        "id": route.id,
        "status": route.status,
        "name": route.name,
        "summary": route.summary,
        "theme": route.theme,
        "difficulty": route.difficulty,
        "accessibility": route.accessibility,
        "cover": route.cover,
        "schedule": route.schedule,
        "timezone": TIMEZONE,
        "tags": route.tags,
        "stops": [
            {
                "index": i,
                "poi_id": stop.poi_id,
                "dwell_minutes": stop.dwell_minutes,
                "events": [event_out(e, None) for e in stop.events],
                "note": stop.note,
            }
            for i, stop in enumerate(route.stops)
        ],
        "legs": legs,
        "detour_factor": DETOUR_FACTOR,
    }
