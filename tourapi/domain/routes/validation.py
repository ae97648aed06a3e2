"""Everything a route write must satisfy, checked before the session is touched.

Errors are 422 problems naming the input precisely: ``stops[2].poi_id``,
``legs[0].path``, ``stops[1].events[0]``...
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import msgspec
import numpy as np
import shapely
from shapely.geometry import LineString, Point
from shapely.geometry.base import BaseGeometry

from tourapi.db.models import MediaFile, Poi
from tourapi.domain.media.services import media_url
from tourapi.domain.pois.schemas import GeoJsonGeometry
from tourapi.domain.routes.schedule import (
    DETOUR_FACTOR,
    PACE_KMH,
    EventSpec,
    at_night,
    night_minutes,
    path_length_m,
)
from tourapi.domain.routes.schemas import EventWrite, RouteWrite
from tourapi.errors import Unprocessable
from tourapi.geo.crs import Crs, geometry_to_wgs84
from tourapi.geo.geometry import M_PER_DEG, GeometryError, haversine_m, parse_geojson
from tourapi.i18n import check_texts, pick
from tourapi.timeutil import TZ, InvalidSchedule, night_bounds, night_of, parse_schedule

PATH_END_TOLERANCE_M = 75.0  # a leg path must start and end this close to its stops' geofences
MAX_LEG_M = 20_000.0  # longer than any sensible leg inside the city
MAX_WALK_S = 3 * 3600  # a walking leg longer than this at the slow pace is a mistake
MAX_SPEED_KMH = 60.0  # a fixed duration that implies more than this is a typo
MAX_OCCURRENCES = 96  # per event per night
CHECK_NIGHTS = 366  # events are checked against opening hours on every night the route runs this year
NAME_CHAIN = ("en", "zh-Hans")


@dataclass(slots=True)
class ValidRoute:
    """Column values of a checked write (WGS-84 geometries), ready to apply."""

    fields: dict[str, Any]
    stops: list[dict[str, Any]]
    legs: list[dict[str, Any]]


def metres_to(geom: BaseGeometry, lon: float, lat: float) -> float:
    """Distance in metres from a point to a geometry (0 inside), in a local frame around the point."""
    if geom.covers(Point(lon, lat)):
        return 0.0
    scale_x = np.cos(np.radians(lat)) * M_PER_DEG
    local = shapely.transform(
        geom, lambda xy: np.column_stack(((xy[:, 0] - lon) * scale_x, (xy[:, 1] - lat) * M_PER_DEG))
    )
    return float(local.distance(Point(0.0, 0.0)))


def event_row(event: EventWrite, field: str) -> dict[str, Any]:
    name = check_texts(event.name, f"{field}.name")
    place = check_texts(event.place, f"{field}.place", required=False)
    series = (event.start, event.end, event.every_minutes)
    has_series = any(v is not None for v in series)
    if has_series and not all(v is not None for v in series):
        raise Unprocessable("a repeating event needs start, end and every_minutes", field=field)
    if not event.times and not has_series:
        raise Unprocessable("an event needs times, or start, end and every_minutes", field=field)
    if event.times and has_series:
        raise Unprocessable("give times or a repeating series, not both", field=field)
    if has_series:
        assert event.start is not None and event.end is not None
        if night_minutes(event.end) < night_minutes(event.start):
            raise Unprocessable(
                "end is before start (times before 12:00 are after midnight)", field=f"{field}.end"
            )
    times = sorted(set(event.times), key=night_minutes)
    spec = spec_of(
        {
            "name": name,
            "kind": event.kind,
            "times": times,
            "start": event.start,
            "end": event.end,
            "every_minutes": event.every_minutes,
            "duration_minutes": event.duration_minutes,
        }
    )
    if len(spec.clock_times()) > MAX_OCCURRENCES:
        raise Unprocessable(f"more than {MAX_OCCURRENCES} occurrences a night", field=field)
    return {
        "name": name,
        "kind": event.kind,
        "times": times,
        "start": event.start,
        "end": event.end,
        "every_minutes": event.every_minutes,
        "duration_minutes": event.duration_minutes,
        "place": place,
    }


def spec_of(event: dict[str, Any], chain: tuple[str, ...] = NAME_CHAIN) -> EventSpec:
    return EventSpec(
        name=pick(event["name"], chain)[0] or "",
        kind=event["kind"],
        times=tuple(event.get("times") or ()),
        start=event.get("start"),
        end=event.get("end"),
        every_minutes=event.get("every_minutes"),
        duration_minutes=int(event.get("duration_minutes") or 0),
    )


def _path(value: GeoJsonGeometry, field: str, crs: Crs) -> LineString:
    raw = {"type": value.type, "coordinates": value.coordinates}
    try:
        geom = parse_geojson(raw, field, ("LineString",))
        if crs is not Crs.WGS84:
            geom = geometry_to_wgs84(geom, crs)
    except GeometryError:
        raise
    except (ValueError, TypeError) as exc:
        raise GeometryError(field, str(exc)) from None
    if len(geom.coords) < 2:
        raise GeometryError(field, "a path needs at least two positions")
    return geom  # type: ignore[return-value]


def validate(
    data: RouteWrite,
    pois: dict[str, Poi],
    media: dict[str, MediaFile],
    today: date,
) -> ValidRoute:
    """Check a whole write. ``pois``/``media``: the rows the write names that exist (deleted included)."""
    fields: dict[str, Any] = {
        "name": check_texts(data.name, "name"),
        "summary": check_texts(data.summary, "summary"),
        "accessibility": check_texts(data.accessibility, "accessibility", required=False),
        "theme": data.theme,
        "status": data.status,
        "difficulty": data.difficulty,
        "tags": sorted(set(data.tags)),
    }
    try:
        fields["schedule"] = parse_schedule(data.schedule.strip()).expression
    except InvalidSchedule as exc:
        raise Unprocessable(str(exc), field="schedule", slug="invalid-opening-hours") from None
    if data.cover is None:
        fields["cover"] = None
    else:
        row = media.get(data.cover.sha256)
        if row is None:
            raise Unprocessable("no such file in the media store; upload it first", field="cover.sha256")
        if not row.content_type.startswith("image/"):
            raise Unprocessable(f"a cover must be an image, not {row.content_type}", field="cover.sha256")
        fields["cover"] = {
            "url": media_url(row.sha256),
            "sha256": row.sha256,
            "bytes": row.bytes,
            "type": row.content_type,
            "alt": check_texts(data.cover.alt, "cover.alt", required=False),
        }

    if len(data.legs) != len(data.stops) - 1:
        raise Unprocessable(
            f"{len(data.stops)} stops need {len(data.stops) - 1} legs, got {len(data.legs)}", field="legs"
        )

    stops: list[dict[str, Any]] = []
    for i, stop in enumerate(data.stops):
        field = f"stops[{i}]"
        poi = pois.get(stop.poi_id)
        if poi is None:
            raise Unprocessable(f"no POI with id {stop.poi_id!r}", field=f"{field}.poi_id")
        if poi.deleted_at is not None:
            raise Unprocessable(f"POI {stop.poi_id!r} has been deleted", field=f"{field}.poi_id")
        if i > 0 and stop.poi_id == data.stops[i - 1].poi_id:
            raise Unprocessable(
                f"stop {i} repeats the previous stop ({stop.poi_id}); merge them", field=f"{field}.poi_id"
            )
        boat_next = i < len(data.legs) and data.legs[i].mode == "boat"
        events = []
        for j, event in enumerate(stop.events):
            efield = f"{field}.events[{j}]"
            if event.kind == "boat" and not boat_next:
                raise Unprocessable(
                    "boat departures belong to a stop whose next leg is a boat", field=f"{efield}.kind"
                )
            events.append(event_row(event, efield))
        stops.append(
            {
                "poi_id": stop.poi_id,
                "dwell_minutes": stop.dwell_minutes,
                "events": events,
                "note": check_texts(stop.note, f"{field}.note", required=False),
            }
        )

    legs: list[dict[str, Any]] = []
    for i, leg in enumerate(data.legs):
        field = f"legs[{i}]"
        a, b = pois[data.stops[i].poi_id], pois[data.stops[i + 1].poi_id]
        path = None
        if leg.path is not None:
            path = _path(leg.path, f"{field}.path", data.crs)
            distance = path_length_m(list(path.coords))
            for end, poi, which in ((path.coords[0], a, "start"), (path.coords[-1], b, "end")):
                gap = metres_to(poi.geofence, end[0], end[1])
                if gap > PATH_END_TOLERANCE_M:
                    raise Unprocessable(
                        f"the path {which}s {gap:.0f} m from the geofence of {poi.id}; "
                        f"at most {PATH_END_TOLERANCE_M:.0f} m",
                        field=f"{field}.path",
                    )
        else:
            distance = haversine_m(a.lon, a.lat, b.lon, b.lat) * DETOUR_FACTOR
        if distance > MAX_LEG_M:
            raise Unprocessable(
                f"the leg is {distance / 1000:.1f} km long; at most {MAX_LEG_M / 1000:.0f} km",
                field=f"{field}.path" if path is not None else field,
            )
        if leg.mode == "boat":
            if leg.duration_minutes is None:
                raise Unprocessable(
                    "a boat leg needs duration_minutes (the cruise time)", field=f"{field}.duration_minutes"
                )
            if not any(e["kind"] == "boat" for e in stops[i]["events"]):
                raise Unprocessable(
                    "a boat leg leaves on departures: add boat events to the stop it leaves from",
                    field=f"stops[{i}].events",
                )
        if leg.duration_minutes is not None:
            kmh = distance / 1000 / (leg.duration_minutes / 60)
            if kmh > MAX_SPEED_KMH:
                raise Unprocessable(
                    f"{distance:.0f} m in {leg.duration_minutes} min is {kmh:.0f} km/h; "
                    f"at most {MAX_SPEED_KMH:.0f}",
                    field=f"{field}.duration_minutes",
                )
        elif leg.mode == "walk" and distance * 3.6 / PACE_KMH["slow"] > MAX_WALK_S:
            raise Unprocessable(
                f"a {distance / 1000:.1f} km walk is more than {MAX_WALK_S // 3600} h at the slow pace; "
                "use a shuttle leg or split it",
                field=field,
            )
        legs.append(
            {
                "mode": leg.mode,
                "path": path,
                "duration_minutes": leg.duration_minutes,
                "note": check_texts(leg.note, f"{field}.note", required=False),
            }
        )

    check_events_in_hours(fields["schedule"], stops, pois, today)
    return ValidRoute(fields, stops, legs)


def run_nights(schedule: str, first: date, count: int = CHECK_NIGHTS) -> list[date]:
    """The nights (from ``first``, ``count`` of them) on which the schedule has a start window."""
    start = night_bounds(first)[0]
    end = start + timedelta(days=count)
    nights: set[date] = set()
    for a, b in parse_schedule(schedule).open_intervals(start, end):
        night = night_of(a)
        last = night_of(b - timedelta(seconds=1))
        while night <= last:
            nights.add(night)
            night += timedelta(days=1)
    return sorted(n for n in nights if n < first + timedelta(days=count))


def check_events_in_hours(
    schedule: str, stops: list[dict[str, Any]], pois: dict[str, Poi], today: date
) -> None:
    """Every event occurrence must fall inside its POI's open hours on every night the route runs."""
    nights: list[date] | None = None
    for i, stop in enumerate(stops):
        poi = pois[stop["poi_id"]]
        if not stop["events"] or not poi.opening_hours:
            continue
        if nights is None:
            nights = run_nights(schedule, today)
        if not nights:
            return
        hours = parse_schedule(poi.opening_hours)
        spans = hours.open_intervals(night_bounds(nights[0])[0], night_bounds(nights[-1])[1])
        starts = [a for a, _ in spans]
        for j, event in enumerate(stop["events"]):
            spec = spec_of(event)
            clocks = spec.clock_times()
            for night in nights:
                for clock in clocks:
                    begin = at_night(night, clock)
                    finish = begin + timedelta(minutes=spec.duration_minutes)
                    if not _inside(spans, starts, begin, finish):
                        name = pick(poi.name, NAME_CHAIN)[0]
                        raise Unprocessable(
                            f"the {clock} {spec.name} on the night of {night.isoformat()} "
                            f"(until {finish.astimezone(TZ):%H:%M}) is outside the opening hours of "
                            f"{name} ({poi.opening_hours})",
                            field=f"stops[{i}].events[{j}]",
                        )


def _inside(spans: list[tuple[datetime, datetime]], starts: list[datetime], a: datetime, b: datetime) -> bool:
    k = bisect.bisect_right(starts, a) - 1
    return k >= 0 and spans[k][0] <= a < spans[k][1] and b <= spans[k][1]


def snapshot_of(valid: ValidRoute) -> Any:
    """A comparable form of a write (paths as coordinate tuples), for idempotent fixture upserts."""
    return msgspec.to_builtins(
        {
            "fields": valid.fields,
            "stops": valid.stops,
            "legs": [
                {**leg, "path": [list(c) for c in leg["path"].coords] if leg["path"] is not None else None}
                for leg in valid.legs
            ],
        }
    )
