from __future__ import annotations

from typing import Any

from advanced_alchemy.types import JsonB
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base


class RouteStop(Base):
    """Stop ``position`` (0-based) of a route: a POI, a planned dwell and optional fixed-time events."""

    __tablename__ = "route_stops"

    route_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("routes.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No ON DELETE: a POI that a route still uses cannot be hard-deleted (tombstone purge skips it).
    poi_id: Mapped[str] = mapped_column(String(64), ForeignKey("pois.id"), index=True)
    dwell_minutes: Mapped[int] = mapped_column(Integer)
    events: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, default=list)
    note: Mapped[dict[str, str]] = mapped_column(JsonB, default=dict)
