from __future__ import annotations

from typing import Any

from advanced_alchemy.types import JsonB
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base
from tourapi.db.types import GeometryType


class RouteLeg(Base):
    """Leg ``position`` of a route: from stop ``position`` to stop ``position + 1``."""

    __tablename__ = "route_legs"

    route_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("routes.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # walk | boat | shuttle
    path: Mapped[Any | None] = mapped_column(GeometryType("LINESTRING", spatial_index=False), default=None)
    duration_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    note: Mapped[dict[str, str]] = mapped_column(JsonB, default=dict)
