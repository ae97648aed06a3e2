"""Fixture loaders: media/ (and the anchors' assets/) into the media store, then routes.json.

routes.json: ``{"routes": [{"id": ..., <a RouteWrite body>}]}``, except that a cover may
name a file of the media/ folder (``"cover": {"file": "x.png", "alt": {...}}``) instead of its
sha256. Loading goes through RouteService.upsert, so it is idempotent and validated like the API.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

from tourapi.domain.media.services import load_media_folder
from tourapi.domain.routes.schemas import RouteWrite
from tourapi.domain.routes.services import RouteService
from tourapi.errors import ApiError
from tourapi.geo.geometry import GeometryError
from tourapi.runtime import Runtime

MEDIA_DIR = "media"


async def load_media(runtime: Runtime, path: Path) -> tuple[int, int]:
    return await load_media_folder(runtime, path)


async def load_routes(runtime: Runtime, path: Path) -> tuple[int, int]:
    from tourapi.fixtures import FixtureError  # tourapi.fixtures imports this module

    data = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for n, raw in enumerate(data["routes"]):
        item: dict[str, Any] = dict(raw)
        route_id = item.pop("id", None)
        if not route_id:
            raise FixtureError(f"{path.name} route {n}: id is required")
        cover = item.get("cover")
        if isinstance(cover, dict) and "file" in cover:
            file = path.parent / MEDIA_DIR / cover["file"]
            if not file.is_file():
                raise FixtureError(f"{path.name} route {n} ({route_id}): cover file {file.name} not found")
            item["cover"] = {
                "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
                "alt": cover.get("alt", {}),
            }
        try:
            write = msgspec.convert(item, RouteWrite)
            async with runtime.sessionmaker() as session:
                changed += await RouteService(runtime, session).upsert(route_id, write)
        except (msgspec.ValidationError, ApiError, GeometryError, ValueError) as exc:
            field = getattr(exc, "field", None)
            where = f" [{field}]" if field else ""
            raise FixtureError(f"{path.name} route {n} ({route_id}){where}: {exc}") from None
    return len(data["routes"]), changed
