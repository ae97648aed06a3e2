"""Declarative base shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamps:
    """created_at / updated_at, set by the services (not by DB defaults) so both backends agree."""

    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow)


class SyncedEntity(Timestamps):
    """A catalogue row that clients sync: soft delete plus the change sequence of its last write."""

    deleted_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    sync_seq: Mapped[int] = mapped_column(BigInteger, index=True)
