"""The anchor side of the /v1/sync feed and of offline route bundles (both owned by the routes
feature), registered at import time; the app imports this module through the anchors controller.

Records are language-neutral (``anchor_record``): every caption locale, the canonical pose
(WGS-84, ENU quaternion) and no clock-dependent state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Anchor
from tourapi.domain.anchors.services import anchor_record
from tourapi.domain.routes.bundle import BundleScope, register_bundle_contributor
from tourapi.domain.sync.registry import register_sync_source

SYNC_KIND = "anchors"


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
    return [anchor_record(a) for a in (await session.scalars(stmt)).all()]


def anchor_asset_refs(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every file the anchors need, once per sha256: ``{sha256, bytes, media_type, uri}``."""
    refs: dict[str, dict[str, Any]] = {}

    def add(asset: dict[str, Any] | None) -> None:
        if asset and asset["sha256"] not in refs:
            refs[asset["sha256"]] = {k: asset[k] for k in ("sha256", "bytes", "media_type", "uri")}

    for record in records:
        for asset in record["assets"]:
            add(asset)
        add(record.get("narration"))
        for method in record["localization"]:
            add(method.get("marker"))
    return sorted(refs.values(), key=lambda r: r["sha256"])


async def bundle_section(session: AsyncSession, scope: BundleScope) -> list[dict[str, Any]]:
    return await anchors_for_pois(session, scope.poi_ids)


register_sync_source(SYNC_KIND, Anchor, anchor_record)  # the registry builds the tombstones
register_bundle_contributor(SYNC_KIND, bundle_section, anchor_asset_refs)
