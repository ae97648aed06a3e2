"""Fixture loader for checkpoints.json (idempotent upsert by venue and slug).

A reload keeps each checkpoint's id, version and manual code, so printed posters stay valid.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from tourapi.domain.checkpoints.schemas import CheckpointCreate
from tourapi.domain.checkpoints.services import CheckpointService
from tourapi.errors import ApiError
from tourapi.runtime import Runtime


async def load_checkpoints(runtime: Runtime, path: Path) -> tuple[int, int]:
    from tourapi.fixtures import FixtureError  # tourapi.fixtures imports this module

    data = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for n, raw in enumerate(data["checkpoints"]):
        item = dict(raw)
        poi_id, slug = item.pop("poi_id", None), item.get("slug")
        if not poi_id or not slug:
            raise FixtureError(f"{path.name} checkpoint {n}: poi_id and slug are required")
        try:
            write = msgspec.convert(item, CheckpointCreate)
            async with runtime.sessionmaker() as session:
                changed += await CheckpointService(runtime, session).upsert_fixture(poi_id, slug, write)
        except (msgspec.ValidationError, ApiError) as exc:
            field = getattr(exc, "field", None)
            where = f" [{field}]" if field else ""
            raise FixtureError(f"{path.name} checkpoint {n} ({poi_id}/{slug}){where}: {exc}") from None
    return len(data["checkpoints"]), changed
