"""The content-addressed media store: files are named by their SHA-256 and never change.

Route covers, and AR assets (glTF/USDZ models, marker images, narration audio), are
stored once in ``media_files`` and served at ``/media/<sha256>`` with an immutable
Cache-Control. Other features reference a file by ``media_ref(...)``:
``{url, sha256, bytes, type}``; the copy never goes stale because the bytes behind
a hash cannot change.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from tourapi.db.models import MediaFile
from tourapi.errors import NotFound, Unprocessable
from tourapi.runtime import Runtime

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# What the store accepts, by file extension (fixtures) and by declared type (uploads).
CONTENT_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".usdz": "model/vnd.usdz+zip",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
}
ALLOWED_TYPES = frozenset(CONTENT_TYPES.values())
CACHE_BYTES = 64 * 1024 * 1024  # per worker; files are immutable, so a cached copy is always right


def media_url(sha256: str) -> str:
    return f"/media/{sha256}"


def media_ref(row: MediaFile) -> dict[str, Any]:
    """How other records point at a stored file."""
    return {"url": media_url(row.sha256), "sha256": row.sha256, "bytes": row.bytes, "type": row.content_type}


@dataclass(frozen=True, slots=True)
class Blob:
    sha256: str
    content_type: str
    data: bytes


class _BlobCache:
    """A small LRU of file contents (by total size), one per runtime."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self.items: OrderedDict[str, Blob] = OrderedDict()

    def get(self, sha256: str) -> Blob | None:
        blob = self.items.get(sha256)
        if blob is not None:
            self.items.move_to_end(sha256)
        return blob

    def put(self, blob: Blob) -> None:
        if len(blob.data) > self.limit // 8 or blob.sha256 in self.items:
            return
        self.items[blob.sha256] = blob
        self.size += len(blob.data)
        while self.size > self.limit:
            _, old = self.items.popitem(last=False)
            self.size -= len(old.data)


_caches: weakref.WeakKeyDictionary[Runtime, _BlobCache] = weakref.WeakKeyDictionary()


def _cache(runtime: Runtime) -> _BlobCache:
    cache = _caches.get(runtime)
    if cache is None:
        cache = _caches[runtime] = _BlobCache()
    return cache


def check_content_type(content_type: str, field: str = "content_type") -> str:
    value = content_type.split(";")[0].strip().lower()
    if value not in ALLOWED_TYPES:
        raise Unprocessable(
            f"unsupported media type {value!r}; one of: {', '.join(sorted(ALLOWED_TYPES))}", field=field
        )
    return value


async def store(
    session: AsyncSession, data: bytes, content_type: str, filename: str | None = None
) -> tuple[MediaFile, bool]:
    """Add a file (no commit). Returns (row, created). Storing the same bytes again is a no-op."""
    if not data:
        raise Unprocessable("the file is empty", field="body")
    content_type = check_content_type(content_type)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = await session.get(MediaFile, sha256)
    if existing is not None:
        return existing, False
    row = MediaFile(
        sha256=sha256,
        content_type=content_type,
        bytes=len(data),
        data=data,
        filename=(filename or None) and Path(filename).name[:255],
    )
    session.add(row)
    return row, True


async def lookup(session: AsyncSession, sha256s: list[str]) -> dict[str, MediaFile]:
    """Metadata (not content) of the stored files among ``sha256s``."""
    if not sha256s:
        return {}
    rows = (await session.scalars(select(MediaFile).where(MediaFile.sha256.in_(sorted(set(sha256s)))))).all()
    return {row.sha256: row for row in rows}


class MediaService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def fetch(self, sha256: str) -> Blob:
        if not SHA256_RE.match(sha256):
            raise NotFound("media ids are lowercase hex SHA-256 digests", field="sha256")
        cache = _cache(self.runtime)
        blob = cache.get(sha256)
        if blob is not None:
            return blob
        async with self.runtime.sessionmaker() as session:
            row = await session.scalar(
                select(MediaFile).options(undefer(MediaFile.data)).where(MediaFile.sha256 == sha256)
            )
        if row is None:
            raise NotFound(f"no media file {sha256}", field="sha256")
        blob = Blob(row.sha256, row.content_type, bytes(row.data))
        cache.put(blob)
        return blob

    async def upload(
        self, data: bytes, content_type: str, filename: str | None
    ) -> tuple[dict[str, Any], bool]:
        async with self.runtime.sessionmaker() as session:
            row, created = await store(session, data, content_type, filename)
            ref = media_ref(row)
            await session.commit()
        return ref, created


async def load_media_folder(runtime: Runtime, folder: Path) -> tuple[int, int]:
    """Fixture loader: store every file of a known type in ``folder`` (other files are skipped)."""
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith((".", "_")) and p.suffix.lower() in CONTENT_TYPES
    ]
    changed = 0
    async with runtime.sessionmaker() as session:
        for path in files:
            _, created = await store(
                session, path.read_bytes(), CONTENT_TYPES[path.suffix.lower()], path.name
            )
            changed += created
        await session.commit()
    return len(files), changed
