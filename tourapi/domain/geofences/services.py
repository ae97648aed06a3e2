"""Geofence questions answered from the in-memory index (no database round trip)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from tourapi.geo.crs import Crs, from_wgs84
from tourapi.geo.index import GeofenceIndex
from tourapi.timeutil import TZ, parse_schedule

Platform = Literal["ios", "android"]


@dataclass(frozen=True, slots=True)
class PlatformLimits:
    max_regions: int  # what the OS monitors per app
    min_radius_m: float  # below this the OS cannot fire reliably


# iOS monitors at most 20 regions per app; Android at most 100 geofences per app.
# Both documentations advise against radii below ~100 m (Android: 100-150 m).
PLATFORMS: dict[str, PlatformLimits] = {
    "ios": PlatformLimits(max_regions=20, min_radius_m=100.0),
    "android": PlatformLimits(max_regions=100, min_radius_m=100.0),
}
REFRESH_MAX_RADIUS_M = 5000.0
HORIZON = timedelta(days=7)


def containing(index: GeofenceIndex, lon: float, lat: float) -> list[str]:
    return index.containing(lon, lat)


def monitor_plan(
    index: GeofenceIndex, lon: float, lat: float, platform: str, moment: datetime, crs: Crs
) -> dict[str, Any]:
    """The circles a phone should register now: nearest open fences plus one refresh circle.

    The refresh circle is centred on the device; its radius reaches the nearest
    fence that was *not* registered (closed now, or beyond the OS limit), so the
    device cannot get near an unregistered fence without leaving it first.
    It expires when any fence within that reach changes opening state.
    """
    limits = PLATFORMS[platform]
    budget = limits.max_regions - 1  # one slot is the refresh circle
    chosen: list[dict[str, Any]] = []
    first_skipped: float | None = None
    expiries: list[datetime] = []
    for circle in index.nearest_circles(lon, lat):
        source = index.sources[index.position[circle.poi_id]]
        schedule = parse_schedule(source.opening_hours) if source.opening_hours else None
        is_open = schedule.is_open(moment) if schedule else True
        change = schedule.next_change(moment, HORIZON) if schedule else None
        if len(chosen) >= budget or not is_open:
            if first_skipped is None:
                first_skipped = circle.distance_m
                if change:
                    expiries.append(change)
            if len(chosen) >= budget:
                break
            continue
        if change:
            expiries.append(change)
        c_lon, c_lat = from_wgs84(circle.lon, circle.lat, crs)
        chosen.append(
            {
                "id": circle.poi_id,
                "lon": round(c_lon, 7),
                "lat": round(c_lat, 7),
                "radius_m": float(max(math.ceil(circle.radius_m), limits.min_radius_m)),
                "distance_m": round(circle.distance_m, 1),
                "expires_at": change.astimezone(TZ).isoformat() if change else None,
            }
        )
    reach = REFRESH_MAX_RADIUS_M if first_skipped is None else min(first_skipped, REFRESH_MAX_RADIUS_M)
    d_lon, d_lat = from_wgs84(lon, lat, crs)
    refresh_expires = min(expiries) if expiries else None
    return {
        "platform": platform,
        "max_regions": limits.max_regions,
        "crs": crs.value,
        "regions": chosen,
        "refresh": {
            "id": "refresh",
            "lon": round(d_lon, 7),
            "lat": round(d_lat, 7),
            "radius_m": float(max(math.floor(reach), limits.min_radius_m)),
            "expires_at": refresh_expires.astimezone(TZ).isoformat() if refresh_expires else None,
        },
        "index_version": index.version,
    }
