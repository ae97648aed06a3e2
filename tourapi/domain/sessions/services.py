"""Visitor sessions: start, ping batches (the hot path), end and erasure."""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.domain.sessions.schemas import (
    PingBatch,
    PingResult,
    RejectedPing,
    RouteProgress,
    SessionStart,
    SessionStarted,
    Transition,
)
from tourapi.errors import ApiError, NotFound, TooManyRequests
from tourapi.geo.crs import Crs, to_wgs84_many
from tourapi.i18n import check_lang_param
from tourapi.live.crowd import crowd_level
from tourapi.live.store import ClassifiedPing, RateLimited, SessionExpired, SessionNotFound
from tourapi.runtime import Runtime
from tourapi.security.principal import Principal
from tourapi.security.tokens import issue_token
from tourapi.timeutil import TZ, night_bounds, night_of
from tourapi.web.ratelimit import ip_subject

# Without a route, a night is over at dawn; sessions end at the latest some hours after that.
NIGHT_ENDS_AT = timedelta(hours=18)  # noon + 18 h = 06:00 the next morning


class SessionGone(ApiError):
    status, slug, title = 404, "session-not-found", "Session not found"


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).astimezone(TZ)


def night_end(night: date) -> datetime:
    return night_bounds(night)[0] + NIGHT_ENDS_AT


def clock() -> float:
    return time.time()


async def start_session(
    runtime: Runtime, session: AsyncSession, data: SessionStart, client_ip: str | None
) -> SessionStarted:
    locale = check_lang_param(data.locale, "locale") or "zh-Hans"
    now = clock()
    ihash = runtime.live.install_hash(data.install_id)
    await runtime.limiter.acquire(
        "session-start", {"ip": ip_subject(client_ip), "install": ihash}, now, "new sessions"
    )
    moment = datetime.fromtimestamp(now, UTC)
    grace = timedelta(hours=runtime.settings.session_grace_after_night_h)
    night = night_of(moment)
    if night_end(night) + grace <= moment:
        night += timedelta(days=1)  # a morning session belongs to the coming night
    ends = night_end(night)
    if data.route_id is not None:
        ends = await runtime.routes.validate_for_session(session, data.route_id, night, ends)
    # Never hand out a session that is over before it starts (a route that ended an hour ago, say).
    hard_end = max((ends + grace).timestamp(), now + runtime.settings.session_idle_s)
    sid, expires = await runtime.live.start_session(ihash, data.route_id, locale, now, hard_end)
    # The token carries what the ping path needs, so a ping batch costs one Redis call and no lookup.
    token, _ = issue_token(
        runtime.jwt,
        f"session:{sid}",
        timedelta(seconds=hard_end - now),
        runtime.settings.jwt_issuer,
        typ="session",
        route=data.route_id or "",
        inst=ihash,
    )
    return SessionStarted(
        session_id=sid, token=token, token_type="bearer", expires_at=_iso(expires), ends_at=_iso(hard_end)
    )


async def end_session(runtime: Runtime, principal: Principal, session_id: str) -> None:
    now = time.time()
    if not await runtime.live.end_session(session_id, "ended", now):
        raise SessionGone("no active session with this id", field="session_id")
    ihash = principal.install_hash
    if ihash and not await runtime.live.install_sessions(ihash):
        await forget(runtime, ihash, now)


async def erase_install(runtime: Runtime, install_id: str) -> int:
    ihash = runtime.live.install_hash(install_id)
    now = time.time()
    erased = await runtime.live.erase_install(ihash, now)
    await forget(runtime, ihash, now)
    return erased


async def forget(runtime: Runtime, ihash: str, now: float) -> None:
    """Nothing that names the install outlives its last session: live keys and rate-limit counters."""
    await runtime.live.forget_install(ihash, now)
    await runtime.limiter.forget("install", ihash, now)


def _reject(index: int, reason: str, detail: str) -> RejectedPing:
    return RejectedPing(index=index, reason=reason, detail=detail)


async def ingest_pings(
    runtime: Runtime, principal: Principal, session_id: str, batch: PingBatch
) -> PingResult:
    """Validate per ping, classify against the in-memory geofence index, apply in one Redis call."""
    settings = runtime.settings
    now = time.time()
    newest_allowed = now + settings.max_clock_skew_s
    oldest_allowed = now - settings.max_ping_age_s
    rejected: list[RejectedPing] = []
    kept: list[tuple[float, int]] = []
    for i, ping in enumerate(batch.pings):
        if ping.timestamp.tzinfo is None:
            rejected.append(
                _reject(i, "timestamp_without_offset", "timestamp needs a UTC offset, e.g. +08:00")
            )
            continue
        ts = round(ping.timestamp.timestamp(), 3)
        if not (math.isfinite(ping.lon) and math.isfinite(ping.lat) and math.isfinite(ping.accuracy)):
            rejected.append(_reject(i, "not_finite", "lon, lat and accuracy must be finite numbers"))
        elif not (-180 <= ping.lon <= 180 and -90 <= ping.lat <= 90):
            rejected.append(_reject(i, "out_of_range", "lon must be in -180..180 and lat in -90..90"))
        elif ts > newest_allowed:
            rejected.append(
                _reject(i, "in_future", f"more than {settings.max_clock_skew_s} s ahead of the server")
            )
        elif ts < oldest_allowed:
            rejected.append(_reject(i, "too_old", f"older than {settings.max_ping_age_s} s"))
        else:
            kept.append((ts, i))
    kept.sort()
    index = runtime.fences.index
    classified: list[ClassifiedPing] = []
    dwell: dict[str, int] = {}
    if kept:
        raw = np.array([[batch.pings[i].lon, batch.pings[i].lat] for _, i in kept], dtype=float)
        coords = raw if batch.crs is Crs.WGS84 else to_wgs84_many(raw, batch.crs)
        inside, near = index.classify(coords[:, 0], coords[:, 1])
        max_accuracy = settings.max_ping_accuracy_m
        for n, (ts, i) in enumerate(kept):
            accuracy = batch.pings[i].accuracy
            good = accuracy <= max_accuracy
            core = tuple(sorted(index.ids[f] for f in inside[n] if good and accuracy <= index.widths_m[f]))
            for poi in core:
                dwell[poi] = index.sources[index.position[poi]].dwell_threshold_s
            classified.append(
                ClassifiedPing(
                    ts=ts,
                    night=night_of(batch.pings[i].timestamp),
                    good=good,
                    core=core,
                    near=tuple(sorted(index.ids[f] for f in near[n])),
                )
            )
    try:
        outcome = await runtime.live.apply_pings(
            session_id,
            principal.install_hash or "",
            principal.route_id,
            classified,
            dwell,
            now,
            submitted=len(batch.pings),
            limits=runtime.ping_limits,
        )
    except (SessionNotFound, SessionExpired):
        raise SessionGone("the session has ended or expired; start a new one", field="session_id") from None
    except RateLimited as limited:
        raise TooManyRequests(
            f"too many pings from this {limited.scope}; try again in {limited.retry_after_s} s",
            headers={"Retry-After": str(limited.retry_after_s)},
        ) from None
    progress = None
    if outcome.route_id:
        stops = runtime.routes.stop_pois(outcome.route_id)
        if stops is not None:
            visited = [poi for poi in stops if poi in set(outcome.visited)]
            nxt = next((poi for poi in stops if poi not in set(outcome.visited)), None)
            progress = RouteProgress(
                route_id=outcome.route_id, visited=visited, next_stop=nxt, completed=nxt is None
            )
    return PingResult(
        accepted=len(kept),
        late=outcome.late,
        rejected=rejected,
        transitions=[
            Transition(type=t, poi_id=p, at=_iso(ts), reason=r) for t, p, ts, r in outcome.transitions
        ],
        inside=outcome.inside,
        expires_at=_iso(outcome.expires),
        route=progress,
    )


async def public_crowd(runtime: Runtime, poi_id: str) -> tuple[str, datetime]:
    """The public crowd level: capacity from the in-memory index, occupancy from Redis; no exact counts."""
    index = runtime.fences.index
    if poi_id not in index.position:
        raise NotFound(f"no POI with id {poi_id!r}", field="poi_id")
    occupancy = await runtime.live.poi_occupancy(poi_id)
    return crowd_level(occupancy, index.sources[index.position[poi_id]].capacity), datetime.now(TZ)
