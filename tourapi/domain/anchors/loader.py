"""Fixture loader for anchors.json (idempotent upsert through AnchorService).

Every ``/media/<sha256>`` asset an anchor names must be a file in the ``assets/`` folder next to
anchors.json with exactly that hash and size, so fixture hashes stay honest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

from tourapi.domain.anchors.schemas import AnchorWrite
from tourapi.domain.anchors.services import AnchorService
from tourapi.errors import ApiError
from tourapi.geo.geometry import GeometryError
from tourapi.runtime import Runtime

ASSETS_DIR = "assets"
ASSET_SUFFIXES = frozenset({".glb", ".usdz", ".png", ".jpg", ".jpeg", ".webp", ".wav", ".ogg", ".mp3", ".m4a"})


def asset_files(folder: Path) -> dict[str, Path]:
    """sha256 -> file, for every file in the fixture assets folder (the media store can load these)."""
    if not folder.is_dir():
        return {}
    return {
        hashlib.sha256(path.read_bytes()).hexdigest(): path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix.lower() in ASSET_SUFFIXES
    }


def _media_refs(item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    refs = [(f"assets[{i}]", a) for i, a in enumerate(item.get("assets", []))]
    if item.get("narration"):
        refs.append(("narration", item["narration"]))
    for i, method in enumerate(item.get("localization", [])):
        if method.get("marker"):
            refs.append((f"localization[{i}].marker", method["marker"]))
    return [(f, a) for f, a in refs if str(a.get("uri", "")).startswith("/media/")]


async def load_anchors(runtime: Runtime, path: Path) -> tuple[int, int]:
    from tourapi.fixtures import FixtureError  # tourapi.fixtures imports this module

    data = json.loads(path.read_text(encoding="utf-8"))
    files = asset_files(path.parent / ASSETS_DIR)
    changed = 0
    for n, raw in enumerate(data["anchors"]):
        item = dict(raw)
        anchor_id = item.pop("id", None)
        if not anchor_id:
            raise FixtureError(f"{path.name} anchor {n}: id is required")
        for field, asset in _media_refs(item):
            file = files.get(asset.get("sha256", ""))
            if file is None or file.stat().st_size != asset.get("bytes"):
                raise FixtureError(
                    f"{path.name} anchor {n} ({anchor_id}): {field} names no file in {ASSETS_DIR}/ "
                    "with that sha256 and size"
                )
        try:
            write = msgspec.convert(item, AnchorWrite)
            async with runtime.sessionmaker() as session:
                changed += await AnchorService(runtime, session).upsert(anchor_id, write)
        except (msgspec.ValidationError, ApiError, GeometryError, ValueError) as exc:
            field = getattr(exc, "field", None)
            where = f" [{field}]" if field else ""
            raise FixtureError(f"{path.name} anchor {n} ({anchor_id}){where}: {exc}") from None
    return len(data["anchors"]), changed
