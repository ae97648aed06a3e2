from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column

from tourapi.db.base import Base, utcnow

_Bytes = bytes  # the class below has a column named ``bytes``


class MediaFile(Base):
    """A content-addressed file (cover images, and later AR assets): immutable once stored."""

    __tablename__ = "media_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(BigInteger)
    # Deferred: listing or referencing files never loads their content.
    data: Mapped[_Bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    filename: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
