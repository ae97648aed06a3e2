from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base


class OccupancySnapshot(Base):
    """Five-minute occupancy of a venue: counts only, never who. Survives a Redis restart.

    A row exists only for venues with someone inside or an entry that night; no row means zero.
    """

    __tablename__ = "occupancy_snapshots"

    poi_id: Mapped[str] = mapped_column(String(64), ForeignKey("pois.id"), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), primary_key=True)
    occupancy: Mapped[int] = mapped_column(Integer)
    entries_tonight: Mapped[int] = mapped_column(Integer)
    checkins_tonight: Mapped[int] = mapped_column(Integer)
    unique_tonight: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
