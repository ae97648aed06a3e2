"""Check-in request and record."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from tourapi.domain.sessions.schemas import RouteProgress
from tourapi.geo.crs import Crs


class CheckinRequest(Struct, forbid_unknown_fields=True):
    """Exactly one of ``token`` (from the QR code) and ``manual_code`` (typed from the poster)."""

    session_id: Annotated[str, Meta(min_length=1, max_length=32, description="must be the token's session")]
    token: (
        Annotated[str, Meta(max_length=512, description="the token from the poster URL, or the whole URL")]
        | None
    ) = None
    manual_code: Annotated[str, Meta(max_length=32, description="the code printed under the QR")] | None = (
        None
    )
    lon: float | None = None
    lat: float | None = None
    accuracy: Annotated[float, Meta(ge=0, le=100_000, description="horizontal accuracy, metres")] | None = (
        None
    )
    scanned_at: (
        Annotated[
            datetime,
            Meta(description="when the code was scanned (offline uploads); default now; needs an offset"),
        ]
        | None
    ) = None
    poi_id: (
        Annotated[
            str,
            Meta(
                max_length=64, description="the venue the app expects; refused as wrong-venue if it differs"
            ),
        ]
        | None
    ) = None
    crs: Crs = Crs.WGS84


class CheckinOut(Struct):
    id: int
    session_id: str
    poi_id: str
    checkpoint_id: int
    checkpoint_label: str | None
    lang: str | None
    i18n: dict[str, dict[str, str]]
    night: date
    scanned_at: datetime
    recorded_at: datetime
    late: bool
    method: Literal["qr", "manual"]
    route: RouteProgress | None = None
