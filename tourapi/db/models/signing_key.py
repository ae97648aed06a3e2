from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base, utcnow


class SigningKey(Base):
    """A key id for JWTs or QR tokens. The key material is derived from the
    master secret and the kid, so no secret is stored in the database; rotating
    means adding a kid, retiring means refusing tokens that carry it."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(8), index=True)
    status: Mapped[str] = mapped_column(String(8), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
