from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tourapi.db.base import Base


class SyncCounter(Base):
    """The catalogue change sequence (one row, name='catalog').

    Every catalogue write bumps it with UPDATE ... RETURNING inside its own
    transaction. The row lock serialises catalogue writers, so sequence order
    is commit order and a sync cursor never skips a change committed later
    with a smaller number. ``purged_through`` is the highest sequence whose
    tombstones were purged: older cursors must resync.
    """

    __tablename__ = "sync_counters"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    purged_through: Mapped[int] = mapped_column(BigInteger, default=0)
