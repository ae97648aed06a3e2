"""Request bodies for route writes. Responses are built in views.py."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from tourapi.domain.pois.schemas import GeoJsonGeometry, Sha256, Slug, Texts
from tourapi.geo.crs import Crs

Theme = Literal["gardens", "canals", "performances", "food", "heritage", "lanterns"]
THEMES: tuple[str, ...] = Theme.__args__  # type: ignore[attr-defined]
Difficulty = Literal["easy", "moderate", "demanding"]
Status = Literal["draft", "published"]
Mode = Literal["walk", "boat", "shuttle"]
EventKind = Literal["performance", "boat"]
HHMM = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local time HH:MM")]
MAX_STOPS = 30


class EventWrite(Struct, forbid_unknown_fields=True):
    """Fixed-time events at a stop: give ``times``, or ``start``/``end``/``every_minutes``.

    Times before 12:00 belong to the next calendar day of the night (``00:30`` is after midnight).
    ``boat`` events are departures of the boat leg that leaves this stop.
    """

    name: Texts
    kind: EventKind = "performance"
    times: Annotated[list[HHMM], Meta(max_length=48)] = msgspec.field(default_factory=list)
    start: HHMM | None = None
    end: HHMM | None = None
    every_minutes: Annotated[int, Meta(ge=5, le=240)] | None = None
    duration_minutes: Annotated[int, Meta(ge=0, le=300)] = 0
    place: Texts = msgspec.field(default_factory=dict)


class StopWrite(Struct, forbid_unknown_fields=True):
    poi_id: Slug
    dwell_minutes: Annotated[int, Meta(ge=0, le=480, description="planned time at the stop")]
    events: Annotated[list[EventWrite], Meta(max_length=10)] = msgspec.field(default_factory=list)
    note: Texts = msgspec.field(default_factory=dict)


class LegWrite(Struct, forbid_unknown_fields=True):
    """The way from one stop to the next. Boat legs need ``duration_minutes`` (the cruise time)."""

    mode: Mode = "walk"
    path: GeoJsonGeometry | None = None
    duration_minutes: Annotated[int, Meta(ge=1, le=300)] | None = None
    note: Texts = msgspec.field(default_factory=dict)


class CoverWrite(Struct, forbid_unknown_fields=True):
    """A file already in the media store (POST /v1/media, or the fixtures' media folder)."""

    sha256: Sha256
    alt: Texts = msgspec.field(default_factory=dict)


class RouteWrite(Struct, forbid_unknown_fields=True):
    """Create or replace a route. Leg paths are in ``crs`` (default wgs84) and stored as WGS-84."""

    name: Texts
    summary: Texts
    theme: Theme
    schedule: Annotated[
        str,
        Meta(
            max_length=1000,
            description="when it runs (start windows): OSM opening_hours, Asia/Shanghai; PH = China holidays",
        ),
    ]
    stops: Annotated[list[StopWrite], Meta(min_length=2, max_length=MAX_STOPS)]
    legs: Annotated[list[LegWrite], Meta(max_length=MAX_STOPS - 1)]
    status: Status = "draft"
    difficulty: Difficulty = "easy"
    accessibility: Texts = msgspec.field(default_factory=dict)
    cover: CoverWrite | None = None
    tags: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    crs: Crs = Crs.WGS84


class RouteCreate(RouteWrite, forbid_unknown_fields=True):
    id: Slug = ""


class RoutePatch(Struct, forbid_unknown_fields=True):
    """Change some fields; absent fields stay. ``stops`` and ``legs`` are replaced as a whole."""

    name: Texts | UnsetType = UNSET
    summary: Texts | UnsetType = UNSET
    theme: Theme | UnsetType = UNSET
    schedule: Annotated[str, Meta(max_length=1000)] | UnsetType = UNSET
    stops: Annotated[list[StopWrite], Meta(min_length=2, max_length=MAX_STOPS)] | UnsetType = UNSET
    legs: Annotated[list[LegWrite], Meta(max_length=MAX_STOPS - 1)] | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    difficulty: Difficulty | UnsetType = UNSET
    accessibility: Texts | UnsetType = UNSET
    cover: CoverWrite | UnsetType | None = UNSET
    tags: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=50)] | UnsetType = UNSET
    crs: Crs = Crs.WGS84
