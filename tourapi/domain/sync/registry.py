"""The sync sources behind GET /v1/sync: entity type -> model + serializer.

Every catalogue entity that clients mirror offline registers here once, at import
time of its feature module (the app imports every feature)::

    from tourapi.domain.sync.registry import register_sync_source
    register_sync_source("anchors", Anchor, anchor_sync_item)

The model must be a ``SyncedEntity`` (``sync_seq``, ``deleted_at``, ``updated_at``)
with a string primary key (``key``, default ``"id"``). ``serialize(row)`` returns
the language-neutral record of a live row; tombstones are built here. Rows for
which ``visible(row)`` is false (soft-deleted, or e.g. a route back in draft) are
sent as deletions. ``serialize_many(session, rows)`` is the batch, async form for
records that need other rows.

This module imports no feature, so any feature can import it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

Serialize = Callable[[Any], dict[str, Any]]
SerializeMany = Callable[[AsyncSession, Sequence[Any]], Awaitable[list[dict[str, Any]]]]


def not_deleted(row: Any) -> bool:
    return row.deleted_at is None


@dataclass(frozen=True, slots=True)
class SyncSource:
    entity: str
    model: type[Any]
    serialize_many: SerializeMany
    visible: Callable[[Any], bool] = not_deleted
    key: str = "id"

    @property
    def key_column(self) -> Any:
        return getattr(self.model, self.key)


_SOURCES: dict[str, SyncSource] = {}


def register_sync_source(
    entity: str,
    model: type[Any],
    serialize: Serialize | None = None,
    *,
    serialize_many: SerializeMany | None = None,
    visible: Callable[[Any], bool] = not_deleted,
    key: str = "id",
) -> SyncSource:
    """Add (or replace) the source for ``entity``. Give ``serialize`` or ``serialize_many``."""
    if (serialize is None) == (serialize_many is None):
        raise TypeError("give exactly one of serialize and serialize_many")
    for column in ("sync_seq", "deleted_at", "updated_at", key):
        if not hasattr(model, column):
            raise TypeError(f"{model.__name__} has no {column!r}: sync sources must be SyncedEntity models")
    if serialize_many is None:
        assert serialize is not None
        one = serialize

        async def serialize_many(_: AsyncSession, rows: Sequence[Any]) -> list[dict[str, Any]]:
            return [one(row) for row in rows]

    source = SyncSource(entity, model, serialize_many, visible, key)
    _SOURCES[entity] = source
    return source


def sync_sources() -> list[SyncSource]:
    """Registered sources in registration order."""
    return list(_SOURCES.values())
