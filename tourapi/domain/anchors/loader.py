"""Fixture loader for anchors.json (idempotent upsert through AnchorService).

It runs after the media loaders: every ``/media/<sha256>`` asset an anchor names must already be
in the media store (the files of fixtures/suzhou/assets/), with the same size and media type.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from tourapi.domain.anchors.schemas import AnchorWrite
from tourapi.domain.anchors.services import AnchorService
from tourapi.errors import ApiError
from tourapi.geo.geometry import GeometryError
from tourapi.runtime import Runtime


async def load_anchors(runtime: Runtime, path: Path) -> tuple[int, int]:
    from tourapi.fixtures import FixtureError  # tourapi.fixtures imports this module

    data = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for n, raw in enumerate(data["anchors"]):
        item = dict(raw)
        anchor_id = item.pop("id", None)
        if not anchor_id:
            raise FixtureError(f"{path.name} anchor {n}: id is required")
        try:
            write = msgspec.convert(item, AnchorWrite)
            async with runtime.sessionmaker() as session:
                changed += await AnchorService(runtime, session).upsert(anchor_id, write)
        except (msgspec.ValidationError, ApiError, GeometryError, ValueError) as exc:
            field = getattr(exc, "field", None)
            where = f" [{field}]" if field else ""
            raise FixtureError(f"{path.name} anchor {n} ({anchor_id}){where}: {exc}") from None
    return len(data["anchors"]), changed
