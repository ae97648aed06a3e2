"""A synthetic city for scale runs: 10,000 POIs with geofences and 50,000 AR anchors.

It lies around Shanghai's centre (121.47 E, 31.23 N), away from the Suzhou fixtures, so "nearby" on
the fixtures and on the synthetic city are separate measurements. Rows are bulk-inserted with the
same columns the services write; each row takes its own catalogue sequence number.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import shapely
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Anchor, Poi, SyncCounter
from tourapi.db.sync import CATALOG
from tourapi.geo.geometry import M_PER_DEG

CENTRE = (121.47, 31.23)
SPACING_M = 90.0  # grid step between synthetic venues


def grid_point(n: int, per_row: int) -> tuple[float, float]:
    row, col = divmod(n, per_row)
    dlat = SPACING_M / M_PER_DEG
    dlon = dlat / math.cos(math.radians(CENTRE[1]))
    return CENTRE[0] + (col - per_row / 2) * dlon, CENTRE[1] + (row - per_row / 2) * dlat


def fence_around(lon: float, lat: float, rng: random.Random) -> shapely.Polygon:
    """A 6-12-sided polygon 20-35 m across, like a small venue."""
    sides = rng.randint(6, 12)
    radius_m = rng.uniform(10, 17.5)
    dlat = radius_m / M_PER_DEG
    dlon = dlat / math.cos(math.radians(lat))
    return shapely.Polygon(
        [
            (lon + dlon * math.cos(2 * math.pi * k / sides), lat + dlat * math.sin(2 * math.pi * k / sides))
            for k in range(sides)
        ]
    )


async def _reserve(session: AsyncSession, count: int) -> int:
    """Take ``count`` sequence numbers at once; returns the first."""
    last = (
        await session.execute(
            update(SyncCounter)
            .where(SyncCounter.name == CATALOG)
            .values(value=SyncCounter.value + count)
            .returning(SyncCounter.value)
        )
    ).scalar_one()
    return int(last) - count + 1


async def seed_city(session: AsyncSession, pois: int = 10_000, anchors: int = 50_000, seed: int = 7) -> None:
    rng = random.Random(seed)
    per_row = math.ceil(math.sqrt(pois))
    now = datetime.now(UTC)
    template = (await session.scalars(select(Anchor).where(Anchor.deleted_at.is_(None)).limit(1))).one()
    first = await _reserve(session, pois + anchors)
    rows: list[dict[str, Any]] = []
    centres = []
    for n in range(pois):
        lon, lat = grid_point(n, per_row)
        fence = fence_around(lon, lat, rng)
        centres.append((f"city-{n:05d}", lon, lat))
        minx, miny, maxx, maxy = fence.bounds
        rows.append(
            {
                "id": f"city-{n:05d}",
                "category": rng.choice(["garden", "museum", "food_street", "viewpoint"]),
                "name": {"zh-Hans": f"场馆{n}", "en": f"Venue {n}"},
                "description": {},
                "location": shapely.Point(lon, lat),
                "geofence": fence,
                "lon": lon,
                "lat": lat,
                "fence_min_lon": minx,
                "fence_min_lat": miny,
                "fence_max_lon": maxx,
                "fence_max_lat": maxy,
                "opening_hours": "Mo-Su 09:00-23:00",
                "capacity": rng.randint(50, 3000),
                "dwell_threshold_s": 300,
                "interest": round(rng.random(), 2),
                "visit_minutes": 30,
                "tags": [],
                "media": [],
                "created_at": now,
                "updated_at": now,
                "deleted_at": None,
                "sync_seq": first + n,
            }
        )
    for start in range(0, len(rows), 1000):
        await session.execute(insert(Poi), rows[start : start + 1000])
    rows = []
    for n in range(anchors):
        poi_id, lon, lat = centres[n % pois]
        dlat = rng.uniform(-8, 8) / M_PER_DEG
        dlon = rng.uniform(-8, 8) / M_PER_DEG / math.cos(math.radians(lat))
        heading = rng.uniform(0, 2 * math.pi)
        rows.append(
            {
                "id": f"city-anchor-{n:05d}",
                "poi_id": poi_id,
                "route_id": None,
                "route_stop_index": None,
                "position": shapely.Point(lon + dlon, lat + dlat),
                "lon": lon + dlon,
                "lat": lat + dlat,
                "h": rng.uniform(0, 6),
                "qx": 0.0,
                "qy": 0.0,
                "qz": math.sin(heading / 2),
                "qw": math.cos(heading / 2),
                "altitude_mode": "terrain",
                "accuracy": template.accuracy,
                "assets": template.assets,
                "scale": 1.0,
                "caption": template.caption,
                "narration": template.narration,
                "schedule": template.schedule,
                "radius_m": template.radius_m,
                "localization": template.localization,
                "created_at": now,
                "updated_at": now,
                "deleted_at": None,
                "sync_seq": first + pois + n,
            }
        )
    for start in range(0, len(rows), 1000):
        await session.execute(insert(Anchor), rows[start : start + 1000])
    await session.commit()
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("ANALYZE pois"))
        await session.execute(text("ANALYZE anchors"))
        await session.commit()
