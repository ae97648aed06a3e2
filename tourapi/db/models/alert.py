from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base, utcnow


class Alert(Base):
    """A crowd alert: a venue reached busy, crowded or full. Raised once per level until it re-arms."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    poi_id: Mapped[str] = mapped_column(String(64), ForeignKey("pois.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))
    occupancy: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    raised_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, index=True)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    acked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    acked_by: Mapped[str | None] = mapped_column(String(64), default=None)
