"""Visitor sessions and ping batches."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from tourapi.geo.crs import Crs

InstallId = Annotated[
    str,
    Meta(
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="app-generated install id; never shown to operators",
    ),
]
MAX_BATCH = 100


class SessionStart(Struct, forbid_unknown_fields=True):
    install_id: InstallId
    locale: Annotated[str, Meta(max_length=16)] = "zh-Hans"
    route_id: Annotated[str, Meta(max_length=64)] | None = None


class SessionStarted(Struct):
    session_id: str
    token: str
    token_type: Literal["bearer"]
    expires_at: datetime
    ends_at: datetime


class Ping(Struct, forbid_unknown_fields=True):
    lon: float
    lat: float
    accuracy: Annotated[float, Meta(ge=0, le=100_000, description="horizontal accuracy, metres (68%)")]
    timestamp: datetime


class PingBatch(Struct, forbid_unknown_fields=True):
    pings: Annotated[list[Ping], Meta(min_length=1, max_length=MAX_BATCH)]
    crs: Crs = Crs.WGS84


class Transition(Struct):
    type: Literal["enter", "exit", "dwell"]
    poi_id: str
    at: datetime
    reason: str


class RejectedPing(Struct):
    index: int
    reason: str
    detail: str


class RouteProgress(Struct):
    route_id: str
    visited: list[str]
    next_stop: str | None
    completed: bool


class PingResult(Struct):
    accepted: int
    late: int
    rejected: list[RejectedPing]
    transitions: list[Transition]
    inside: list[str]
    expires_at: datetime
    route: RouteProgress | None = None


class EraseRequest(Struct, forbid_unknown_fields=True):
    install_id: InstallId


class Erased(Struct):
    sessions_erased: int


class Crowd(Struct):
    poi_id: str
    level: Literal["comfortable", "busy", "crowded", "full", "unknown"]
    as_of: datetime
