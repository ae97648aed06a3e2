from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advanced_alchemy.types import JsonB
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tourapi.db.base import Base, SyncedEntity

if TYPE_CHECKING:
    from tourapi.db.models.route_leg import RouteLeg
    from tourapi.db.models.route_stop import RouteStop


class Route(SyncedEntity, Base):
    """A night route: ordered stops (route_stops) joined by legs (route_legs).

    Stops and legs belong to the route: a write replaces them all and bumps the
    route's ``sync_seq``, so clients sync a route as one unit.
    """

    __tablename__ = "routes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # draft | published
    name: Mapped[dict[str, str]] = mapped_column(JsonB)
    summary: Mapped[dict[str, str]] = mapped_column(JsonB)
    theme: Mapped[str] = mapped_column(String(32))
    difficulty: Mapped[str] = mapped_column(String(16))
    accessibility: Mapped[dict[str, str]] = mapped_column(JsonB, default=dict)
    # A media reference {sha256, url, bytes, type, alt}; content-addressed, so the copy never goes stale.
    cover: Mapped[dict[str, Any] | None] = mapped_column(JsonB, default=None)
    # When it runs: OSM opening_hours in Asia/Shanghai (PH = China's public holidays).
    schedule: Mapped[str] = mapped_column(String(1000))
    tags: Mapped[list[str]] = mapped_column(JsonB, default=list)
    stops: Mapped[list[RouteStop]] = relationship(
        order_by="RouteStop.position", cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )
    legs: Mapped[list[RouteLeg]] = relationship(
        order_by="RouteLeg.position", cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )
