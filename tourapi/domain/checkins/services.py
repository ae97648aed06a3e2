"""Check-ins: verify a scanned code, record it once, then count it in Redis.

Order of a check-in (POST /v1/checkins):
1. the body's session is the token's session (403 session-mismatch);
2. a retry with a known Idempotency-Key returns its record (200) before anything else is judged;
3. scanned_at is plausible (not ahead of the server clock by more than max_clock_skew_s, not older than
   max_late_checkin_h); the night is the night of scanned_at, and a scan older than LATE_AFTER is "late";
4. the session is active (Redis). If Redis is down the signed session token vouches for it;
5. the code: a signed token (signature, key, checkpoint, version) or a manual code (rate-limited);
6. the optional expected venue (wrong-venue) and the checkpoint's optional proximity rule (too-far);
7. insert under the unique constraint (session, checkpoint, night): the first request gets 201, every
   repeat (sequential, concurrent, or a retry) gets 200 with the same record;
8. after the one commit, count it in Redis (LiveStore.record_checkin, idempotent per record id). The
   repair job (counters.py) later sets ``counted`` on the row, counting first any record Redis missed
   (down, or failed between commit and count); it never counts a record the request counted.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import GeometryCollection, Point
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.base import utcnow
from tourapi.db.models import Checkin, Checkpoint, Poi
from tourapi.domain.checkins.schemas import CheckinOut, CheckinRequest
from tourapi.domain.checkpoints.errors import Refused
from tourapi.domain.checkpoints.services import CheckpointService
from tourapi.domain.common.params import point_in
from tourapi.domain.sessions.schemas import RouteProgress
from tourapi.errors import Unprocessable
from tourapi.geo.geometry import local_metric
from tourapi.i18n import pick
from tourapi.live.store import CheckinCount, LiveStore
from tourapi.runtime import Runtime
from tourapi.security.principal import Principal
from tourapi.timeutil import TZ, night_of
from tourapi.web.ratelimit import REDIS_UNAVAILABLE, ip_subject

log = logging.getLogger("tourapi.checkins")

LATE_AFTER = timedelta(minutes=15)  # an older scan is an offline upload: recorded, but not "inside now"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")
# What "Redis is down" looks like through redis-py (socket errors are wrapped into these).


def distance_to_fence_m(fence: shapely.Geometry, lon: float, lat: float) -> float:
    """Metres from a point to a geofence (0 inside), in a local metric projection around both."""
    point = Point(lon, lat)
    if fence.covers(point):
        return 0.0
    metric, _, _ = local_metric(np.array([GeometryCollection([fence, point])], dtype=object))
    fence_m, point_m = metric[0].geoms
    return float(fence_m.distance(point_m))


def token_of(value: str) -> str:
    """The token from a bare token or a whole poster URL (the app may send what the camera read)."""
    return value.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


async def count_checkin(
    live: LiveStore, record: Checkin, dwell_threshold_s: int, fresh: bool
) -> CheckinCount | None:
    """Add one committed record to the Redis counters (a no-op if counted before); None (logged) if
    Redis is unavailable."""
    try:
        return await live.record_checkin(
            record.id,
            record.session_id,
            record.visitor,
            record.poi_id,
            str(record.checkpoint_id),
            record.scanned_at.timestamp(),
            record.night,
            fresh,
            dwell_threshold_s,
        )
    except REDIS_UNAVAILABLE as exc:
        log.warning(
            "check-in %s is recorded but not yet counted (Redis unavailable: %s)",
            record.id,
            type(exc).__name__,
        )
        return None


class CheckinService:
    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session
        self.checkpoints = CheckpointService(runtime, session)
        self.limiter = runtime.limiter

    async def check_in(
        self,
        principal: Principal,
        data: CheckinRequest,
        idempotency_key: str | None,
        client_ip: str | None,
        chain: tuple[str, ...],
    ) -> tuple[CheckinOut, bool]:
        """(record, created): created is True only for the request that wrote the record."""
        sid = data.session_id
        if principal.session_id is None or sid != principal.session_id:
            raise Refused(
                "session-mismatch", "session_id is not the session of this token", field="session_id"
            )
        if (data.token is None) == (data.manual_code is None):
            raise Unprocessable("send exactly one of token and manual_code", field="token")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise Unprocessable("Idempotency-Key: 1 to 64 visible ASCII characters", field="Idempotency-Key")
        if idempotency_key is not None:
            existing = await self._by_key(sid, idempotency_key)
            if existing is not None:
                return await self._out(existing, principal, None, chain), False

        now = utcnow()
        subjects = {"session": sid, "ip": ip_subject(client_ip)}
        if principal.install_hash:
            subjects["install"] = principal.install_hash
        try:
            await self.limiter.acquire("checkin", subjects, now.timestamp(), "check-ins")
        except REDIS_UNAVAILABLE as exc:
            # Signed QR check-ins must not be lost to a Redis outage: this limit fails open
            # (manual codes, which can be guessed, fail closed below).
            log.warning("check-in rate limit skipped (Redis unavailable: %s)", type(exc).__name__)
        scanned = self._scanned_at(data.scanned_at, now)
        live_session, redis_up = await self._active_session(sid, now)
        if data.token is not None:
            checkpoint, poi = await self.checkpoints.resolve_token(token_of(data.token))
            method = "qr"
        else:
            checkpoint, poi = await self._resolve_manual(
                data.manual_code or "", sid, principal.install_hash, client_ip, now
            )
            method = "manual"
        if data.poi_id is not None and data.poi_id != poi.id:
            raise Refused(
                "wrong-venue",
                f"this code belongs to {poi.name.get('en', poi.id)} ({poi.id}), not to {data.poi_id!r}",
                field="poi_id",
            )
        if checkpoint.require_proximity:
            self._check_proximity(data, poi, checkpoint)

        night = night_of(scanned)
        existing = await self._by_slot(sid, checkpoint.id, night)
        if existing is not None:
            return await self._out(existing, principal, live_session, chain, checkpoint), False
        record = Checkin(
            session_id=sid,
            checkpoint_id=checkpoint.id,
            checkpoint_version=checkpoint.version,
            poi_id=poi.id,
            night=night,
            visitor=self.runtime.live.visitor_token(principal.install_hash or sid, night.isoformat()),
            route_id=principal.route_id,
            method=method,
            scanned_at=scanned,
            created_at=now,
            late=now - scanned > LATE_AFTER,
            counted=False,
            idempotency_key=idempotency_key,
        )
        dwell = poi.dwell_threshold_s
        self.session.add(record)
        try:
            await self.session.commit()
        except IntegrityError:
            # A concurrent duplicate won the unique constraint: answer with its record. (The rollback
            # expired the loaded rows, so nothing loaded before it is used again.)
            checkpoint_id = record.checkpoint_id
            await self.session.rollback()
            winner = (await self._by_key(sid, idempotency_key) if idempotency_key else None) or (
                await self._by_slot(sid, checkpoint_id, night)
            )
            if winner is None:
                raise
            return await self._out(winner, principal, live_session, chain), False
        # Redis just failed the session check: leave the counting to the repair job instead of waiting
        # for a second timeout. The row's `counted` flag is the repair job's to set (no second commit here).
        if redis_up:
            await count_checkin(self.runtime.live, record, dwell, fresh=not record.late)
        return await self._out(record, principal, live_session, chain, checkpoint), True

    # ---- steps -----------------------------------------------------------------------------------------------

    def _scanned_at(self, value: datetime | None, now: datetime) -> datetime:
        if value is None:
            return now
        if value.tzinfo is None:
            raise Unprocessable(
                "scanned_at needs a UTC offset, e.g. 2026-07-18T20:15:00+08:00", field="scanned_at"
            )
        settings = self.runtime.settings
        ahead = (value - now).total_seconds()
        if ahead > settings.max_clock_skew_s:
            raise Refused(
                "implausible-scanned-at",
                f"scanned_at is {ahead:.0f} s ahead of the server clock; at most {settings.max_clock_skew_s} s "
                "is accepted",
                field="scanned_at",
            )
        if now - value > timedelta(hours=settings.max_late_checkin_h):
            raise Refused(
                "implausible-scanned-at",
                f"scanned_at is more than {settings.max_late_checkin_h} h ago; offline check-ins are accepted "
                f"for {settings.max_late_checkin_h} h",
                field="scanned_at",
            )
        return min(value.astimezone(UTC), now)

    async def _active_session(self, sid: str, now: datetime) -> tuple[dict[str, str] | None, bool]:
        """(the live session hash, whether Redis answered)."""
        try:
            info = await self.runtime.live.session(sid)
        except REDIS_UNAVAILABLE as exc:
            # Degraded mode: the signed, unexpired session token vouches for the session.
            log.warning("session check skipped (Redis unavailable: %s)", type(exc).__name__)
            return None, False
        if info is None or float(info.get("hard_end") or 0) <= now.timestamp():
            raise Refused(
                "session-not-active",
                "this session has ended; start a new session and send the check-in again with scanned_at",
                field="session_id",
            )
        return info, True

    async def _resolve_manual(
        self, code: str, sid: str, install: str | None, client_ip: str | None, now: datetime
    ) -> tuple[Checkpoint, Poi]:
        # Redis down: 503 (retry later). Failing open would let guesses through unlimited.
        subjects = {"session": sid, "ip": ip_subject(client_ip)}
        if install:
            subjects["install"] = install
        keys = await self.limiter.acquire("manual-code", subjects, now.timestamp(), "manual-code attempts")
        found = await self.checkpoints.resolve_manual_code(code)
        await self.limiter.refund(keys)  # only failed attempts count against the limits
        return found

    def _check_proximity(self, data: CheckinRequest, poi: Poi, checkpoint: Checkpoint) -> None:
        if data.lon is None or data.lat is None:
            raise Refused(
                "position-required",
                "this check-in point needs the phone's position (lon, lat, accuracy)",
                field="lon" if data.lon is None else "lat",
            )
        lon, lat = point_in(data.lon, data.lat, data.crs)
        accuracy = data.accuracy or 0.0
        limit = self.runtime.settings.max_ping_accuracy_m
        if accuracy > limit:
            raise Refused(
                "position-too-inaccurate",
                f"the position is accurate to {accuracy:.0f} m; this check-in point needs {limit:.0f} m or better",
                field="accuracy",
            )
        distance = distance_to_fence_m(poi.geofence, lon, lat)
        allowed = accuracy + checkpoint.proximity_margin_m
        if distance > allowed:
            raise Refused(
                "too-far",
                f"the position is {distance:.0f} m outside {poi.name.get('en', poi.id)}; at most {allowed:.0f} m "
                "(accuracy + margin) is accepted here",
                field="lon",
            )

    # ---- records ---------------------------------------------------------------------------------------------

    async def _by_key(self, sid: str, key: str) -> Checkin | None:
        return await self.session.scalar(
            sa.select(Checkin).where(Checkin.session_id == sid, Checkin.idempotency_key == key)
        )

    async def _by_slot(self, sid: str, checkpoint_id: int, night: object) -> Checkin | None:
        return await self.session.scalar(
            sa.select(Checkin).where(
                Checkin.session_id == sid, Checkin.checkpoint_id == checkpoint_id, Checkin.night == night
            )
        )

    async def _route(
        self, principal: Principal, sid: str, live_session: dict[str, str] | None
    ) -> RouteProgress | None:
        """Route progress: stops visited by geofence (Redis) or by any check-in of this session (database)."""
        route_id = principal.route_id
        stops = self.runtime.routes.stop_pois(route_id) if route_id else None
        if not route_id or stops is None:
            return None
        visited = set(
            (await self.session.scalars(sa.select(Checkin.poi_id).where(Checkin.session_id == sid))).all()
        )
        visited |= {f[2:] for f in (live_session or {}) if f.startswith("v:")}
        done = [poi for poi in stops if poi in visited]
        nxt = next((poi for poi in stops if poi not in visited), None)
        return RouteProgress(route_id=route_id, visited=done, next_stop=nxt, completed=nxt is None)

    async def _out(
        self,
        record: Checkin,
        principal: Principal,
        live_session: dict[str, str] | None,
        chain: tuple[str, ...],
        checkpoint: Checkpoint | None = None,
    ) -> CheckinOut:
        if checkpoint is None or checkpoint.id != record.checkpoint_id:
            checkpoint = await self.session.get(Checkpoint, record.checkpoint_id)
        labels = checkpoint.label if checkpoint is not None else {}
        label, lang = pick(labels, chain)
        return CheckinOut(
            id=record.id,
            session_id=record.session_id,
            poi_id=record.poi_id,
            checkpoint_id=record.checkpoint_id,
            checkpoint_label=label,
            lang=lang,
            i18n={"checkpoint_label": labels},
            night=record.night,
            scanned_at=record.scanned_at.astimezone(TZ),
            recorded_at=record.created_at.astimezone(TZ),
            late=record.late,
            method=record.method,  # type: ignore[arg-type]
            route=await self._route(principal, record.session_id, live_session),
        )
