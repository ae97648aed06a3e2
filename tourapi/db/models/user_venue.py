from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base


class UserVenue(Base):
    """Binds a staff account to a venue (POI) it may act on."""

    __tablename__ = "user_venues"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    poi_id: Mapped[str] = mapped_column(String(64), ForeignKey("pois.id"), primary_key=True)
