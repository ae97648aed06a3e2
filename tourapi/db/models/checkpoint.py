from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base, Timestamps


class Checkpoint(Timestamps, Base):
    """A place at a venue where visitors check in by scanning a QR poster (main gate, a stage, a pier).

    The QR token names ``id`` and ``version``; revoking a lost or misused poster bumps ``version`` (and
    draws a new ``manual_code``), so old prints are refused. ``slug`` is the fixture/natural key within
    the venue. ``deleted_at`` retires the checkpoint altogether.
    """

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("poi_id", "slug", name="uq_checkpoints_poi_id_slug"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    poi_id: Mapped[str] = mapped_column(String(64), ForeignKey("pois.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    label: Mapped[dict[str, str]] = mapped_column(JsonB)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Six characters from an unambiguous alphabet, unique among checkpoints; printed under the QR.
    manual_code: Mapped[str] = mapped_column(String(8), unique=True)
    require_proximity: Mapped[bool] = mapped_column(Boolean, default=False)
    proximity_margin_m: Mapped[float] = mapped_column(Float, default=30.0)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
