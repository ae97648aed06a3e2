from __future__ import annotations

from typing import Any

from advanced_alchemy.types import JsonB
from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base, SyncedEntity
from tourapi.db.types import GeometryType


class Poi(SyncedEntity, Base):
    """A point of interest with its geofence. Geometries are WGS-84 (SRID 4326)."""

    __tablename__ = "pois"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[dict[str, str]] = mapped_column(JsonB)
    description: Mapped[dict[str, str]] = mapped_column(JsonB, default=dict)
    location: Mapped[Any] = mapped_column(GeometryType("POINT"))
    geofence: Mapped[Any] = mapped_column(GeometryType("GEOMETRY"))
    # Plain-number copies of the geometry bounds: SQLite has no spatial index,
    # so these B-tree-indexed columns pre-filter bbox and radius queries there.
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float, index=True)
    fence_min_lon: Mapped[float] = mapped_column(Float)
    fence_min_lat: Mapped[float] = mapped_column(Float, index=True)
    fence_max_lon: Mapped[float] = mapped_column(Float)
    fence_max_lat: Mapped[float] = mapped_column(Float)
    opening_hours: Mapped[str | None] = mapped_column(String(1000))
    capacity: Mapped[int] = mapped_column(Integer)
    dwell_threshold_s: Mapped[int] = mapped_column(Integer, default=300)
    interest: Mapped[float] = mapped_column(Float, default=0.5)
    visit_minutes: Mapped[int] = mapped_column(Integer, default=30)
    tags: Mapped[list[str]] = mapped_column(JsonB, default=list)
    media: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, default=list)
