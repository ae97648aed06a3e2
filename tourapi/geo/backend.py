"""The one place where the storage backends differ: executing spatial predicates.

Services build an ordinary ``select(Model).where(...)`` with every non-spatial
filter and hand it here with a ``SpatialQuery``. PostGIS answers with
ST_Intersects / ST_DWithin on ``geography`` (sphere) inside the database;
SQLite pre-filters on indexed bound columns and Shapely/NumPy refine in
Python. Both return the same rows in the same order with the same distances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import shapely
from geoalchemy2 import Geography
from geoalchemy2 import functions as gf
from sqlalchemy import Select, and_, cast, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tourapi.geo.geometry import degrees_for_metres, haversine_many


@dataclass(frozen=True, slots=True)
class Near:
    lon: float
    lat: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class SpatialColumns:
    """Which columns of a model hold the geometry and its plain-number bounds."""

    point: InstrumentedAttribute[Any]  # a POINT geometry used for distances
    shape: InstrumentedAttribute[Any]  # the geometry tested against a bbox
    lon: InstrumentedAttribute[Any]
    lat: InstrumentedAttribute[Any]
    min_lon: InstrumentedAttribute[Any]
    min_lat: InstrumentedAttribute[Any]
    max_lon: InstrumentedAttribute[Any]
    max_lat: InstrumentedAttribute[Any]
    key: InstrumentedAttribute[Any]  # tie-breaker for a stable order


@dataclass(frozen=True, slots=True)
class SpatialQuery:
    bbox: tuple[float, float, float, float] | None = None
    near: Near | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    distances: list[float | None]
    has_more: bool


class SpatialBackend(Protocol):
    name: str

    async def fetch(
        self,
        session: AsyncSession,
        stmt: Select[Any],
        cols: SpatialColumns,
        query: SpatialQuery,
        *,
        limit: int,
        offset: int = 0,
        keep: Callable[[Any], bool] | None = None,
    ) -> Page:
        """Run ``stmt`` (already ordered) with the spatial filters; nearest first when ``near`` is set.

        ``keep`` is a Python filter (e.g. "open at 20:00") applied before paging.
        """
        ...


def _bbox_prefilter(stmt: Select[Any], cols: SpatialColumns, query: SpatialQuery) -> Select[Any]:
    if query.bbox is not None:
        min_lon, min_lat, max_lon, max_lat = query.bbox
        stmt = stmt.where(
            and_(
                cols.max_lon >= min_lon,
                cols.min_lon <= max_lon,
                cols.max_lat >= min_lat,
                cols.min_lat <= max_lat,
            )
        )
    if query.near is not None:
        dlon, dlat = degrees_for_metres(query.near.radius_m, query.near.lat)
        stmt = stmt.where(
            and_(
                cols.lat.between(query.near.lat - dlat, query.near.lat + dlat),
                cols.lon.between(query.near.lon - dlon, query.near.lon + dlon),
            )
        )
    return stmt


class PostgisBackend:
    name = "postgis"

    async def fetch(
        self,
        session: AsyncSession,
        stmt: Select[Any],
        cols: SpatialColumns,
        query: SpatialQuery,
        *,
        limit: int,
        offset: int = 0,
        keep: Callable[[Any], bool] | None = None,
    ) -> Page:
        distance = None
        if query.bbox is not None:
            envelope = gf.ST_MakeEnvelope(*query.bbox, 4326)
            stmt = stmt.where(gf.ST_Intersects(cols.shape, envelope))
        if query.near is not None:
            here = cast(gf.ST_SetSRID(gf.ST_MakePoint(query.near.lon, query.near.lat), 4326), Geography)
            there = cast(cols.point, Geography)
            dlon, dlat = degrees_for_metres(query.near.radius_m, query.near.lat)
            box = gf.ST_MakeEnvelope(
                query.near.lon - dlon,
                query.near.lat - dlat,
                query.near.lon + dlon,
                query.near.lat + dlat,
                4326,
            )
            # The && box test uses the GiST index; ST_DWithin on geography then decides exactly.
            stmt = stmt.where(
                cols.point.op("&&")(box), func.ST_DWithin(there, here, query.near.radius_m, False)
            )
            distance = func.ST_Distance(there, here, False).label("distance_m")
            stmt = stmt.add_columns(distance).order_by(None).order_by(distance, cols.key)
        if keep is None:
            records = (await session.execute(stmt.limit(limit + 1).offset(offset))).all()
        else:
            records = [r for r in (await session.execute(stmt)).all() if keep(r[0])][offset:]
        has_more = len(records) > limit
        records = records[:limit]
        rows = [r[0] for r in records]
        distances = [float(r[1]) for r in records] if distance is not None else [None] * len(rows)
        return Page(rows, distances, has_more)


class ShapelyBackend:
    """SQLite: B-tree bound columns narrow the candidates, Shapely/NumPy decide."""

    name = "shapely"

    async def fetch(
        self,
        session: AsyncSession,
        stmt: Select[Any],
        cols: SpatialColumns,
        query: SpatialQuery,
        *,
        limit: int,
        offset: int = 0,
        keep: Callable[[Any], bool] | None = None,
    ) -> Page:
        if query.bbox is None and query.near is None and keep is None:
            rows = list((await session.scalars(stmt.limit(limit + 1).offset(offset))).all())
            return Page(rows[:limit], [None] * min(len(rows), limit), len(rows) > limit)

        candidates = list((await session.scalars(_bbox_prefilter(stmt, cols, query))).all())
        if keep is not None:
            candidates = [row for row in candidates if keep(row)]
        if query.bbox is not None and candidates:
            box = shapely.box(*query.bbox)
            shapes = np.array([getattr(row, cols.shape.key) for row in candidates])
            candidates = [row for row, hit in zip(candidates, shapely.intersects(shapes, box)) if hit]
        distances: list[float | None]
        if query.near is not None and candidates:
            lons = np.array([getattr(row, cols.lon.key) for row in candidates])
            lats = np.array([getattr(row, cols.lat.key) for row in candidates])
            metres = haversine_many(lons, lats, query.near.lon, query.near.lat)
            keyed = sorted(
                (float(d), getattr(row, cols.key.key), i)
                for i, (row, d) in enumerate(zip(candidates, metres))
                if d <= query.near.radius_m
            )
            candidates = [candidates[i] for _, _, i in keyed]
            distances = [d for d, _, _ in keyed]
        else:
            distances = [None] * len(candidates)
        window = slice(offset, offset + limit)
        return Page(candidates[window], distances[window], len(candidates) > offset + limit)


def backend_for(database_url: str) -> SpatialBackend:
    return ShapelyBackend() if database_url.startswith("sqlite") else PostgisBackend()
