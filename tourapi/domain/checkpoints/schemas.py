"""Checkpoints (QR poster spots at a venue): request bodies and the staff view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from tourapi.domain.pois.schemas import Slug, Texts

Margin = Annotated[
    float,
    Meta(ge=0, le=1000, description="metres added to the venue geofence (plus the reported accuracy)"),
]


class CheckpointCreate(Struct, forbid_unknown_fields=True):
    label: Texts  # e.g. {"zh-Hans": "正门", "en": "Main gate"}
    slug: Slug | None = None  # default: derived from the English label
    require_proximity: Annotated[
        bool, Meta(description="refuse check-ins reported outside the venue geofence (+ accuracy + margin)")
    ] = False
    proximity_margin_m: Margin = 30.0


class CheckpointPatch(Struct, forbid_unknown_fields=True):
    """Relabel or change the proximity rule. The printed QR stays valid (it does not carry the label)."""

    label: Texts | UnsetType = UNSET
    require_proximity: bool | UnsetType = UNSET
    proximity_margin_m: Margin | UnsetType = UNSET


class CheckpointOut(Struct):
    id: int
    poi_id: str
    slug: str
    label: str | None
    lang: str | None
    i18n: dict[str, dict[str, str]]
    version: int
    active: bool
    manual_code: str
    url: str
    kid: str
    require_proximity: bool
    proximity_margin_m: float
    qr_png: str
    qr_svg: str
    posters_pdf: str
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None
