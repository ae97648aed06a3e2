"""Load a fixtures folder (idempotent upsert through the same services the API uses)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from tourapi.domain.anchors.loader import load_anchors
from tourapi.domain.checkpoints.loader import load_checkpoints
from tourapi.domain.pois.schemas import PoiWrite
from tourapi.domain.pois.services import PoiService
from tourapi.domain.routes.loader import load_media, load_routes
from tourapi.errors import ApiError
from tourapi.geo.geometry import GeometryError
from tourapi.runtime import Runtime

Loader = Callable[[Runtime, Path], Awaitable[tuple[int, int]]]


class FixtureError(Exception):
    pass


async def load_pois(runtime: Runtime, path: Path) -> tuple[int, int]:
    data = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for n, feature in enumerate(data["features"]):
        props = dict(feature["properties"])
        poi_id = props.pop("id")
        props.pop("sources", None)
        props["location"] = feature["geometry"]
        try:
            write = msgspec.convert(props, PoiWrite)
            async with runtime.sessionmaker() as session:
                changed += await PoiService(runtime, session).upsert(poi_id, write)
        except (msgspec.ValidationError, ApiError, GeometryError, ValueError) as exc:
            raise FixtureError(f"{path.name} feature {n} ({poi_id}): {exc}") from None
    return len(data["features"]), changed


# File name -> loader, in dependency order. Later features append their own files.
LOADERS: list[tuple[str, Loader]] = [("pois.geojson", load_pois)]
LOADERS += [("media", load_media), ("assets", load_media), ("routes.json", load_routes)]
# Anchors reference assets/ files in the media store and may link to route stops: after both.
LOADERS.append(("anchors.json", load_anchors))
LOADERS.append(("checkpoints.json", load_checkpoints))


async def load_fixtures(runtime: Runtime, folder: Path) -> dict[str, tuple[int, int]]:
    """Returns {file: (records, changed)}."""
    if not folder.is_dir():
        raise FixtureError(f"fixtures folder not found: {folder}")
    report: dict[str, Any] = {}
    for filename, loader in LOADERS:
        path = folder / filename
        if path.exists():
            report[filename] = await loader(runtime, path)
    return report
