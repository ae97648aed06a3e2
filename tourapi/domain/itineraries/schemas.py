"""The request body of POST /v1/itineraries/plan. The response is a plain dict built in planner.py.

Bounds that deserve a precise message (budget, coordinates, categories, weights, ids) are checked
in services.py, so a 422 names the exact field; the schema keeps only the shape and hard limits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from tourapi.geo.crs import Crs

PoiId = Annotated[str, Meta(min_length=1, max_length=64)]


class Place(Struct, forbid_unknown_fields=True):
    """A place given by the app: GPS (wgs84) by default, or the map's datum (gcj02 for AMap, bd09 for Baidu)."""

    lon: float
    lat: float
    crs: Crs = Crs.WGS84


class PlanRequest(Struct, forbid_unknown_fields=True):
    """Plan one night: give ``end_time`` or ``budget_minutes`` (exactly one).

    Times are ISO 8601; without an offset they are Asia/Shanghai local time.
    """

    start: Place
    start_time: Annotated[datetime, Meta(description="when the visitor sets off from `start`")]
    end_time: Annotated[datetime, Meta(description="be done (at `end`, if given) by then")] | None = None
    budget_minutes: Annotated[int, Meta(description="minutes available from start_time (1..720)")] | None = (
        None
    )
    end: (
        Annotated[Place, Meta(description="where the night ends (hotel, metro); default: the last venue")]
        | None
    ) = None
    pace: Literal["slow", "normal", "fast"] = "normal"
    interests: Annotated[
        dict[str, float],
        Meta(
            max_length=20,
            description="POI category -> weight (0..10); unlisted categories weigh 0; empty: every category weighs 1",
        ),
    ] = msgspec.field(default_factory=dict)
    must_include: Annotated[list[PoiId], Meta(max_length=10, description="POI ids the plan must visit")] = (
        msgspec.field(default_factory=list)
    )
    exclude: Annotated[list[PoiId], Meta(max_length=100, description="POI ids never to visit")] = (
        msgspec.field(default_factory=list)
    )
    avoid_crowds: Annotated[
        bool, Meta(description="skip venues forecast full, halve the score of venues forecast crowded")
    ] = True
    lang: (
        Annotated[str, Meta(max_length=16, description="preferred locale for names, e.g. en or zh-Hans")]
        | None
    ) = None
    crs: Annotated[Crs, Meta(description="coordinate system of the points in the answer")] = Crs.WGS84
