from __future__ import annotations

from datetime import date, datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base, utcnow


class Checkin(Base):
    """One visitor check-in: the system of record for visits (Redis counters are rebuilt from these rows).

    At most one per session, checkpoint and night (the unique constraint makes concurrent duplicates
    lose). ``visitor`` is the per-night keyed token of the install (LiveStore.visitor_token), never the
    install id, so unique-visitor counts can be rebuilt exactly. ``counted`` is set by the repair job
    once it has made sure Redis counted the row (counting is idempotent per id; the request itself
    counts but does not commit twice), and by ``tourapi live rebuild``. No position is stored.
    """

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("session_id", "checkpoint_id", "night", name="uq_checkins_session_checkpoint_night"),
        UniqueConstraint("session_id", "idempotency_key", name="uq_checkins_session_idempotency_key"),
        # The repair job's work list: only the rows not yet counted (migration 0006). SQLite uses a partial
        # index only when the query repeats its WHERE term, and SQLAlchemy writes NOT counted there as this.
        Index(
            "ix_checkins_uncounted",
            "id",
            postgresql_where=text("NOT counted"),
            sqlite_where=text("counted = 0"),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    session_id: Mapped[str] = mapped_column(String(32))
    checkpoint_id: Mapped[int] = mapped_column(Integer, ForeignKey("checkpoints.id"), index=True)
    checkpoint_version: Mapped[int] = mapped_column(Integer)
    poi_id: Mapped[str] = mapped_column(String(64), ForeignKey("pois.id"), index=True)
    night: Mapped[date] = mapped_column(Date, index=True)
    visitor: Mapped[str] = mapped_column(String(32))
    route_id: Mapped[str | None] = mapped_column(String(64), default=None)
    method: Mapped[str] = mapped_column(String(8))  # "qr" or "manual"
    scanned_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
