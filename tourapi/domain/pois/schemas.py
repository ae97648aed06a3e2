"""Request bodies for POI writes. Responses are GeoJSON built in services.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from tourapi.geo.crs import Crs

Slug = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
        max_length=64,
        description="lowercase letters, digits and hyphens",
    ),
]
Category = Literal[
    "garden",
    "historic_street",
    "museum",
    "performance_venue",
    "temple",
    "city_gate",
    "pier",
    "viewpoint",
    "food_street",
    "pagoda",
    "bridge",
]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
Texts = Annotated[dict[str, str], Meta(description="locale -> text; zh-Hans and en are required for names")]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]


class GeoJsonGeometry(Struct):
    type: str
    coordinates: Any


class Media(Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(max_length=2000)]
    type: Annotated[str, Meta(pattern=r"^[a-z]+/[a-z0-9.+-]+$", description="media type, e.g. image/jpeg")]
    sha256: Sha256
    bytes: Annotated[int, Meta(ge=1, le=2_000_000_000)]
    license: Annotated[str, Meta(max_length=200)] | None = None
    attribution: Annotated[str, Meta(max_length=500)] | None = None
    role: Annotated[str, Meta(max_length=32)] | None = None


class PoiWrite(Struct, forbid_unknown_fields=True):
    """Create or replace a POI. Coordinates are in ``crs`` (default wgs84) and stored as WGS-84."""

    category: Category
    name: Texts
    location: GeoJsonGeometry
    geofence: GeoJsonGeometry
    capacity: Annotated[int, Meta(ge=1, le=1_000_000, description="people inside at once")]
    description: Texts = msgspec.field(default_factory=dict)
    opening_hours: Annotated[str, Meta(max_length=1000)] | None = None
    dwell_threshold_s: Annotated[int, Meta(ge=0, le=86_400)] = 300
    interest: Annotated[float, Meta(ge=0, le=1)] = 0.5
    visit_minutes: Annotated[int, Meta(ge=1, le=1440)] = 30
    tags: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    media: Annotated[list[Media], Meta(max_length=50)] = msgspec.field(default_factory=list)
    crs: Crs = Crs.WGS84


class PoiCreate(PoiWrite, forbid_unknown_fields=True):
    id: Slug = ""


class PoiPatch(Struct, forbid_unknown_fields=True):
    """Change some fields; absent fields stay as they are."""

    category: Category | UnsetType = UNSET
    name: Texts | UnsetType = UNSET
    description: Texts | UnsetType = UNSET
    location: GeoJsonGeometry | UnsetType = UNSET
    geofence: GeoJsonGeometry | UnsetType = UNSET
    capacity: Annotated[int, Meta(ge=1, le=1_000_000)] | UnsetType = UNSET
    opening_hours: Annotated[str, Meta(max_length=1000)] | UnsetType | None = UNSET
    dwell_threshold_s: Annotated[int, Meta(ge=0, le=86_400)] | UnsetType = UNSET
    interest: Annotated[float, Meta(ge=0, le=1)] | UnsetType = UNSET
    visit_minutes: Annotated[int, Meta(ge=1, le=1440)] | UnsetType = UNSET
    tags: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=50)] | UnsetType = UNSET
    media: Annotated[list[Media], Meta(max_length=50)] | UnsetType = UNSET
    crs: Crs = Crs.WGS84
