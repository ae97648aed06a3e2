from __future__ import annotations

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tourapi.db.base import Base, Timestamps
from tourapi.db.models.user_venue import UserVenue


class User(Timestamps, Base):
    """A staff, operator or admin account. Visitors are anonymous and have no row here."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    venues: Mapped[list[UserVenue]] = relationship(lazy="selectin", cascade="all, delete-orphan")
