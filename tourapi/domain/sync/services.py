"""GET /v1/sync (one delta feed over every registered source) and the tombstone purge.

Cursor semantics: every catalogue write takes the next number of the shared
change sequence (``SyncCounter 'catalog'``) and stamps it on the row as
``sync_seq``; writers queue on the counter row, so numbers commit in order. The
feed returns rows with ``sync_seq`` greater than the cursor, across entity types,
ordered by ``sync_seq``. A row carries only its latest state, so an entity
appears once per page however often it changed, and again only after a new
change. The cursor is opaque (a versioned encoding of the last sequence number
delivered); a page never splits the rows of one sequence number.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import SyncCounter
from tourapi.db.sync import CATALOG
from tourapi.domain.sync import sources as _sources  # noqa: F401  (registers pois and routes)
from tourapi.domain.sync.registry import SyncSource, sync_sources
from tourapi.errors import ApiError, Unprocessable
from tourapi.runtime import Runtime

log = logging.getLogger("tourapi.sync")
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


class ResyncRequired(ApiError):
    """410: the cursor is older than the kept tombstones; drop local data and sync from scratch."""

    status, slug, title = 410, "resync-required", "Resync required"


@dataclass(frozen=True, slots=True)
class Cursor:
    """``after``: the last sequence number delivered. ``snapshot``: the catalogue head when a first
    sync began, while its pages are still being fetched (None for a delta cursor)."""

    after: int
    snapshot: int | None = None

    def encode(self) -> str:
        raw = f"c1.{self.after}" if self.snapshot is None else f"s1.{self.after}.{self.snapshot}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def encode_cursor(seq: int) -> str:
    return Cursor(seq).encode()


def decode_cursor(cursor: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, rest = raw.partition(".")
        numbers = [int(n) for n in rest.split(".")]
        if kind == "c1" and len(numbers) == 1 and numbers[0] >= 0:
            return Cursor(numbers[0])
        if kind == "s1" and len(numbers) == 2 and min(numbers) >= 0:
            return Cursor(numbers[0], numbers[1])
        raise ValueError(raw)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Unprocessable(
            "not a cursor from this API; use the cursor of the previous /v1/sync answer, or omit since",
            field="since",
        ) from None


@dataclass(slots=True)
class _Row:
    seq: int
    entity: str
    key: str
    source: SyncSource
    row: Any


async def _counter(session: AsyncSession) -> tuple[int, int]:
    value, purged = (
        await session.execute(
            select(SyncCounter.value, SyncCounter.purged_through).where(SyncCounter.name == CATALOG)
        )
    ).one()
    return int(value), int(purged)


async def _fetch(session: AsyncSession, source: SyncSource, stmt: Any) -> list[_Row]:
    rows = (await session.scalars(stmt)).all()
    return [_Row(int(r.sync_seq), source.entity, str(getattr(r, source.key)), source, r) for r in rows]


def _select(source: SyncSource, snapshot: int | None) -> Any:
    stmt = select(source.model)
    if snapshot is not None:
        # A first sync skips tombstones older than its start: the client never had those entities.
        stmt = stmt.where(or_(source.model.deleted_at.is_(None), source.model.sync_seq > snapshot))
    return stmt


async def feed(session: AsyncSession, since: str | None, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """One page of changes after ``since`` (an opaque cursor); no ``since``: a first sync.

    A first sync returns every live entity (in pages; its cursors remember where it began, so
    its later pages still leave out what was deleted before it began). Then deltas: rows with a
    larger sequence number, tombstones included.
    """
    # Read the counter before the rows: every sequence number up to it is committed and visible below.
    head, purged_through = await _counter(session)
    cursor = decode_cursor(since) if since else Cursor(0, head)
    snapshot = cursor.snapshot
    if max(cursor.after, snapshot or 0) < purged_through:
        raise ResyncRequired(
            "tombstones newer than this cursor were purged; drop the local catalogue and sync again "
            "without since",
            field="since",
            resync_required=True,  # the flag apps test, besides the problem type
            purged_through=encode_cursor(purged_through),
        )
    low = cursor.after
    merged: list[_Row] = []
    capped = False
    for source in sync_sources():
        stmt = _select(source, snapshot).where(source.model.sync_seq > low)
        stmt = stmt.order_by(source.model.sync_seq, source.key_column).limit(limit + 1)
        rows = await _fetch(session, source, stmt)
        capped = capped or len(rows) > limit
        merged.extend(rows)
    merged.sort(key=lambda r: (r.seq, r.entity, r.key))
    page = merged[:limit]
    has_more = len(merged) > limit
    if has_more and page and merged[limit].seq == page[-1].seq:
        # Never split one sequence number across pages: the cursor could not point inside it.
        last = page[-1].seq
        seen = {(r.entity, r.key) for r in page}
        for source in sync_sources():
            stmt = _select(source, snapshot).where(source.model.sync_seq == last)
            page.extend(r for r in await _fetch(session, source, stmt) if (r.entity, r.key) not in seen)
        page.sort(key=lambda r: (r.seq, r.entity, r.key))
        has_more = capped or any(r.seq > last for r in merged)
    last_seq = page[-1].seq if page else low
    if has_more:
        nxt = Cursor(last_seq, snapshot)
    else:
        nxt = Cursor(max(last_seq, head, low))
    if snapshot is not None:  # withdrawn before the first sync began (e.g. drafts): never sent
        page = [r for r in page if r.seq > snapshot or r.source.visible(r.row)]
    return {
        "changes": await _serialize(session, page),
        "cursor": nxt.encode(),
        "has_more": has_more,
        "entities": [s.entity for s in sync_sources()],
    }


async def _serialize(session: AsyncSession, page: list[_Row]) -> list[dict[str, Any]]:
    live: dict[str, list[_Row]] = {}
    for r in page:
        if r.source.visible(r.row):
            live.setdefault(r.entity, []).append(r)
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for entity, rows in live.items():
        data = await rows[0].source.serialize_many(session, [r.row for r in rows])
        records.update({(entity, r.key): d for r, d in zip(rows, data, strict=True)})
    out = []
    for r in page:
        item: dict[str, Any] = {
            "entity": r.entity,
            "id": r.key,
            "seq": r.seq,
            "updated_at": r.row.updated_at.isoformat(),
        }
        data = records.get((r.entity, r.key))
        if data is not None:
            item.update(op="upsert", data=data)
        else:
            deleted_at = r.row.deleted_at
            item.update(
                op="delete",
                reason="deleted" if deleted_at is not None else "withdrawn",
                deleted_at=deleted_at.isoformat() if deleted_at is not None else None,
            )
        out.append(item)
    return out


# ---- purge ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PurgeReport:
    cutoff: datetime
    purged: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)  # still referenced (e.g. a POI a route uses)
    purged_through: int = 0


async def purge_tombstones(
    runtime: Runtime, older_than_days: int, now: datetime | None = None
) -> PurgeReport:
    """Hard-delete tombstones deleted more than ``older_than_days`` ago, where nothing references them.

    Each row goes in its own transaction together with raising ``purged_through`` to its
    sequence number, so a client whose cursor is older than a purged tombstone is told to
    resync. Rows that are still referenced (a foreign key refuses) stay and are reported.
    Sources are retried until nothing more can go (a route tombstone may free a POI tombstone).
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must be >= 0")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    report = PurgeReport(cutoff)
    refused: set[tuple[str, str]] = set()
    progress = True
    while progress:
        progress = False
        for source in reversed(sync_sources()):
            model = source.model
            async with runtime.sessionmaker() as session:
                rows = (
                    await session.execute(
                        select(source.key_column, model.sync_seq)
                        .where(model.deleted_at.is_not(None), model.deleted_at < cutoff)
                        .order_by(model.sync_seq)
                    )
                ).all()
            for key, seq in rows:
                async with runtime.sessionmaker() as session:
                    try:
                        await session.execute(delete(model).where(source.key_column == key))
                        await session.execute(
                            update(SyncCounter)
                            .where(SyncCounter.name == CATALOG)
                            .values(purged_through=_greatest(int(seq)))
                        )
                        await session.commit()
                    except IntegrityError:
                        await session.rollback()
                        refused.add((source.entity, str(key)))
                        continue
                refused.discard((source.entity, str(key)))
                report.purged[source.entity] = report.purged.get(source.entity, 0) + 1
                progress = True
    for entity, _ in refused:
        report.kept[entity] = report.kept.get(entity, 0) + 1
    async with runtime.sessionmaker() as session:
        report.purged_through = (await _counter(session))[1]
    log.info("purged tombstones before %s: %s (kept %s)", cutoff.isoformat(), report.purged, report.kept)
    return report


def _greatest(seq: int) -> Any:
    """SQL for max(purged_through, seq), portable to SQLite and PostgreSQL."""
    return case((SyncCounter.purged_through < seq, seq), else_=SyncCounter.purged_through)
