"""The catalogue change sequence that drives ETags, the geofence index and /v1/sync."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import SyncCounter

CATALOG = "catalog"


async def next_sync_seq(session: AsyncSession) -> int:
    """Take the next sequence number inside the caller's transaction.

    UPDATE ... RETURNING locks the counter row until commit, so concurrent
    catalogue writers queue here and numbers are committed in order.
    """
    result = await session.execute(
        update(SyncCounter)
        .where(SyncCounter.name == CATALOG)
        .values(value=SyncCounter.value + 1)
        .returning(SyncCounter.value)
    )
    return int(result.scalar_one())  # the row is seeded by the first migration / embedded bootstrap


async def current_sync_seq(session: AsyncSession) -> int:
    value = await session.scalar(select(SyncCounter.value).where(SyncCounter.name == CATALOG))
    return int(value or 0)
