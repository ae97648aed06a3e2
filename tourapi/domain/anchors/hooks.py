"""What other features need from anchors: the /v1/sync feed and offline route bundles.

The routes feature owns the sync registry and the bundle contributors; these functions are the
anchor side of both, ready to be registered with one line each (see docs/api.md, "AR anchors").
Records are language-neutral: ``caption`` is picked with the default chain and ``i18n.caption``
holds every locale, and the pose is always canonical (WGS-84, ENU quaternion).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Anchor
from tourapi.domain.anchors.services import anchor_json, tombstone

SYNC_KIND = "anchors"


async def anchors_changed_since(session: AsyncSession, after_seq: int, limit: int) -> list[Anchor]:
    """Anchors written or soft-deleted after ``after_seq``, oldest change first (tombstones included)."""
    stmt = (
        select(Anchor)
        .where(Anchor.sync_seq > after_seq)
        .order_by(Anchor.sync_seq, Anchor.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


def anchor_sync_item(anchor: Anchor) -> dict[str, Any]:
    """One /v1/sync item: the canonical record, or a tombstone ``{id, poi_id, deleted: true, ...}``."""
    if anchor.deleted_at is not None:
        return tombstone(anchor)
    return anchor_json(anchor)


async def anchors_for_pois(session: AsyncSession, poi_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Bundle-ready records of the live anchors of these POIs, ordered by POI then id.

    Each record carries its asset hashes (``assets[].sha256``, ``narration.sha256``, image
    markers' ``localization[].marker.sha256``); :func:`anchor_asset_refs` lists them.
    """
    ids = sorted(set(poi_ids))
    if not ids:
        return []
    stmt = (
        select(Anchor)
        .where(Anchor.poi_id.in_(ids), Anchor.deleted_at.is_(None))
        .order_by(Anchor.poi_id, Anchor.id)
    )
    return [anchor_json(a) for a in (await session.scalars(stmt)).all()]


def anchor_asset_refs(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every file the anchors need, once per sha256: ``{sha256, bytes, media_type, uri}``."""
    refs: dict[str, dict[str, Any]] = {}

    def add(asset: dict[str, Any] | None) -> None:
        if asset and asset["sha256"] not in refs:
            refs[asset["sha256"]] = {k: asset[k] for k in ("sha256", "bytes", "media_type", "uri")}

    for record in records:
        if record.get("deleted"):
            continue
        for asset in record["assets"]:
            add(asset)
        add(record.get("narration"))
        for method in record["localization"]:
            add(method.get("marker"))
    return sorted(refs.values(), key=lambda r: r["sha256"])
