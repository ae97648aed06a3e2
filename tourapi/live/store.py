"""Live visitor state in Redis: sessions, geofence transitions, occupancy, nightly counters.

The database is the system of record; nothing here holds a position. A ping
batch is applied by one Lua script call (one round trip); sweeps and
aggregates run in background jobs (tourapi/live/jobs.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from importlib import resources
from typing import Any

import msgspec
import redis.asyncio as aioredis

from tourapi.live.keys import LiveKeys, install_hash
from tourapi.settings import Settings
from tourapi.timeutil import night_of

COUNTER_TTL_S = 3 * 86400  # nightly counters outlive their night by two days (operators' "last night")
SESSION_HASH_GRACE_S = 3600  # the hash outlives its expiry so the sweeper can always close its visits
VISITOR_TOKEN_CACHE = 100_000
RECOUNT_BATCH = 1000  # records per recount.lua call: each call blocks Redis for a few milliseconds at most
_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


def _lua(name: str) -> str:
    return (resources.files("tourapi.live") / "lua" / name).read_text(encoding="utf-8")


class CheckinCount(Enum):
    """What counting one check-in record in Redis did (-1, 0 and 1 are what checkin.lua returns)."""

    NOT_COUNTABLE = -2  # the session id names no shard of this layout (the shard count was lowered)
    ALREADY_COUNTED = -1
    COUNTED = 0
    COUNTED_AND_INSIDE = 1


class SessionNotFound(Exception):
    pass


class SessionExpired(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after_s: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ClassifiedPing:
    """A ping reduced to what the state machine needs: when, and which fences it is inside."""

    ts: float
    night: date
    good: bool  # accurate enough to decide that a visitor left
    core: tuple[str, ...]  # inside these fences, accurate enough for each fence
    near: tuple[str, ...]  # inside these fences widened by the hysteresis margin


@dataclass(slots=True)
class PingOutcome:
    transitions: list[tuple[str, str, float, str]]
    inside: list[str]
    visited: list[str]
    route_id: str | None
    late: int
    expires: float


@dataclass(slots=True)
class SweepReport:
    expired_sessions: int = 0
    timed_out: int = 0
    shards: dict[int, int] = field(default_factory=dict)


def _list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {}.
    return value if isinstance(value, list) else []


class LiveStore:
    def __init__(self, redis: aioredis.Redis, settings: Settings, secret: str) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = LiveKeys(settings.redis_namespace, settings.live_shards)
        self._secret = secret
        self._ping = redis.register_script(_lua("ping.lua"))
        self._leave = redis.register_script(_lua("leave.lua"))
        self._checkin = redis.register_script(_lua("checkin.lua"))
        self._recount_script = redis.register_script(_lua("recount.lua"))
        # HMAC per (install, night) is the same on every ping of the night: remember the recent ones.
        self._visitor_tokens: dict[tuple[str, str], str] = {}

    # ---- sessions --------------------------------------------------------------------------------------------

    def install_hash(self, install_id: str) -> str:
        return install_hash(self._secret, install_id)

    def visitor_token(self, install_hash: str, night: str) -> str:
        # Unique-visitor sketches count a per-night keyed token, which cannot be linked across nights
        # or back to an install without the server secret.
        token = self._visitor_tokens.get((install_hash, night))
        if token is None:
            message = f"visitor:{night}:{install_hash}".encode()
            token = hmac.new(self._secret.encode(), message, hashlib.sha256).hexdigest()[:16]
            if len(self._visitor_tokens) >= VISITOR_TOKEN_CACHE:
                self._visitor_tokens.clear()  # cheap bound; a miss only costs one HMAC
            self._visitor_tokens[(install_hash, night)] = token
        return token

    async def start_session(
        self, ihash: str, route_id: str | None, locale: str, now: float, hard_end: float
    ) -> tuple[str, float]:
        shard = self.keys.shard_of_install(ihash)
        sid = self.keys.new_session_id(shard)
        expires = min(now + self.settings.session_idle_s, hard_end)
        k = self.keys
        # All keys share the shard's hash tag: one node, one round trip.
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            k.session(shard, sid),
            mapping={
                "sid": sid,
                "install": ihash,
                "route": route_id or "",
                "locale": locale,
                "created": now,
                "hard_end": hard_end,
                "last_ts": 0,
            },
        )
        pipe.pexpireat(k.session(shard, sid), int((expires + SESSION_HASH_GRACE_S) * 1000))
        pipe.zadd(k.active(shard), {sid: expires})
        if route_id:
            pipe.zadd(k.route_active(shard, route_id), {sid: expires})
        pipe.sadd(k.install(shard, ihash), sid)
        pipe.pexpireat(k.install(shard, ihash), int((hard_end + SESSION_HASH_GRACE_S) * 1000))
        await pipe.execute()
        return sid, expires

    async def session(self, sid: str) -> dict[str, str] | None:
        shard = self.keys.shard_of_session(sid)
        if shard is None:
            return None
        data = await self.redis.hgetall(self.keys.session(shard, sid))
        return data or None

    async def apply_pings(
        self,
        sid: str,
        install: str,
        route_id: str | None,
        pings: list[ClassifiedPing],
        dwell: dict[str, int],
        now: float,
        submitted: int = 0,
        limits: dict[str, int] | None = None,
    ) -> PingOutcome:
        """Apply classified pings. ``submitted`` pings (rejected ones included) count against ``limits``
        (pings per minute per session and per install)."""
        limits = limits or {"session": 10**9, "install": 10**9}
        shard = self.keys.shard_of_session(sid)
        if shard is None:
            raise SessionNotFound(sid)
        k = self.keys
        entries = {p.night.isoformat(): k.entries(shard, p.night) for p in pings}
        hll = {
            f"{p.night.isoformat()}|{poi}": k.visitors(shard, p.night, poi) for p in pings for poi in p.core
        }
        route_key = k.route_active(shard, route_id) if route_id else None
        install_limit_key = k.install_rate(shard, install, int(now // 60))
        payload = {
            "now": now,
            "idle": self.settings.session_idle_s,
            "grace": SESSION_HASH_GRACE_S,
            "maxlen": self.settings.event_stream_maxlen,
            "ttl": COUNTER_TTL_S,
            "route_key": route_key,
            "submitted": max(submitted, len(pings)),
            "limit_session": limits["session"],
            "limit_install": limits["install"],
            "install_limit_key": install_limit_key,
            "pings": [
                {
                    "ts": p.ts,
                    "night": p.night.isoformat(),
                    "good": p.good,
                    "core": list(p.core),
                    "near": list(p.near),
                }
                for p in pings
            ],
            "dwell": dwell,
            "entries": entries,
            "hll": hll,
            "visitor": {night: self.visitor_token(install, night) for night in entries},
        }
        keys = [
            k.session(shard, sid),
            k.occupancy(shard),
            k.presence(shard),
            k.active(shard),
            k.transitions(shard),
        ]
        keys += (
            [install_limit_key]
            + ([route_key] if route_key else [])
            + list(entries.values())
            + list(hll.values())
        )
        raw = _decode.decode(await self._ping(keys=keys, args=[_encode.encode(payload)]))
        if isinstance(raw, dict) and raw.get("error") == "session_not_found":
            raise SessionNotFound(sid)
        if isinstance(raw, dict) and raw.get("error") == "session_expired":
            raise SessionExpired(sid)
        if isinstance(raw, dict) and raw.get("error") == "rate_limited":
            raise RateLimited(raw["scope"], max(1, int(raw["retry"] + 0.999)))
        return PingOutcome(
            transitions=[tuple(t) for t in _list(raw["t"])],  # type: ignore[misc]
            inside=_list(raw["inside"]),
            visited=_list(raw["visited"]),
            route_id=raw["route"] or None,
            late=int(raw["late"]),
            expires=float(raw["expires"]),
        )

    async def leave(self, sid: str, pois: list[str], reason: str, ts: float) -> list[str]:
        shard = self.keys.shard_of_session(sid)
        if shard is None or not pois:
            return []
        k = self.keys
        return list(
            await self._leave(
                keys=[k.session(shard, sid), k.occupancy(shard), k.presence(shard), k.transitions(shard)],
                args=[sid, reason, ts, self.settings.event_stream_maxlen, *pois],
            )
        )

    async def end_session(self, sid: str, reason: str, now: float) -> bool:
        """Close the session's visits and erase everything it left in Redis. False if it did not exist.

        Per-install data (shared by the install's sessions) is dropped by ``forget_install``.
        """
        shard = self.keys.shard_of_session(sid)
        if shard is None:
            return False
        k = self.keys
        info = await self.redis.hmget(k.session(shard, sid), ["install", "route"])
        ihash, route = info[0] or "", info[1] or ""
        keys = [
            k.session(shard, sid),
            k.occupancy(shard),
            k.presence(shard),
            k.transitions(shard),
            k.active(shard),
            k.install(shard, ihash or "-"),
        ]
        if route:
            keys.append(k.route_active(shard, route))
        await self._leave(keys=keys, args=[sid, reason, now, self.settings.event_stream_maxlen, "*"])
        # Presence members outlive an expired hash; close any left (the install is unknown by then).
        stale = [m for m in await self.redis.zrange(k.presence(shard), 0, -1) if m.endswith(f"|{sid}")]
        if stale:
            await self.leave(sid, [m.rsplit("|", 1)[0] for m in stale], reason, now)
        return ihash != ""

    async def erase_install(self, ihash: str, now: float) -> int:
        shard = self.keys.shard_of_install(ihash)
        sids = await self.redis.smembers(self.keys.install(shard, ihash))
        for sid in sorted(sids):
            await self.end_session(sid, "erased", now)
        await self.forget_install(ihash, now)
        return len(sids)

    async def install_sessions(self, ihash: str) -> int:
        return int(await self.redis.scard(self.keys.install(self.keys.shard_of_install(ihash), ihash)))

    async def forget_install(self, ihash: str, now: float) -> None:
        """Drop what is kept per install (its session set, ping-rate counters) once it has no session."""
        shard = self.keys.shard_of_install(ihash)
        minute = int(now // 60)
        await self.redis.delete(
            self.keys.install(shard, ihash),
            *(self.keys.install_rate(shard, ihash, minute - back) for back in (0, 1, 2)),
        )

    # ---- check-ins --------------------------------------------------------------------------------------------

    async def record_checkin(
        self,
        record_id: int,
        sid: str,
        visitor: str,
        poi_id: str,
        checkpoint_id: str,
        ts: float,
        night: date,
        fresh: bool,
        dwell_threshold_s: int,
    ) -> CheckinCount:
        """Count one committed check-in record; a record counted before is not counted again."""
        shard = self.keys.shard_of_session(sid)
        if shard is None:
            return CheckinCount.NOT_COUNTABLE
        k = self.keys
        keys = [
            k.checkins(shard, night),
            k.visitors(shard, night, poi_id),
            k.session(shard, sid),
            k.occupancy(shard),
            k.presence(shard),
            k.entries(shard, night),
            k.transitions(shard),
            k.checkins_counted(shard, night),
        ]
        args = [
            sid,
            poi_id,
            checkpoint_id,
            f"{ts:.3f}",
            visitor,
            "1" if fresh else "0",
            dwell_threshold_s,
            self.settings.event_stream_maxlen,
            COUNTER_TTL_S,
            record_id,
        ]
        return CheckinCount(int(await self._checkin(keys=keys, args=args)))

    async def counted_checkins(self, records: list[tuple[int, str, date]]) -> set[int]:
        """Which of these (record id, session id, night) check-ins need no counting: counted already, or
        not countable. One pipelined round trip (one per node on Redis Cluster)."""
        asked = [(rid, self.keys.shard_of_session(sid), night) for rid, sid, night in records]
        pipe = self.redis.pipeline(transaction=False)
        for rid, shard, night in asked:
            if shard is not None:
                pipe.sismember(self.keys.checkins_counted(shard, night), str(rid))
        answers = iter(await pipe.execute())
        return {rid for rid, shard, _ in asked if shard is None or next(answers)}

    async def rebuild_night(
        self, night: date, checkins: list[tuple[int, str, str, str, str]], entries_floor: dict[str, int]
    ) -> dict[str, int]:
        """Recount a night's check-ins and unique visitors from database facts.

        ``checkins`` are (record id, session id, poi, checkpoint, visitor token) per stored check-in; each
        is marked counted. Ping-derived entries live only in Redis; ``entries_floor`` (from the persisted
        snapshots) restores them to at least the last snapshot.
        """
        k = self.keys
        await self._recount_shards(night, checkins, clear=True)
        current = await self.night_counters(night)
        topped_up = {}
        pipe = self.redis.pipeline(transaction=False)
        for poi, floor in entries_floor.items():
            missing = floor - current.get(poi, {}).get("entries", 0)
            if missing > 0:
                pipe.hincrby(k.entries(0, night), poi, missing)
                topped_up[poi] = missing
        pipe.expire(k.entries(0, night), COUNTER_TTL_S)
        await pipe.execute()
        return {"checkins": len(checkins), "entries_topped_up": sum(topped_up.values())}

    async def recount(self, night: date, checkins: list[tuple[int, str, str, str, str]]) -> None:
        """Count these (record id, session id, poi, checkpoint, visitor token) check-ins unless counted."""
        await self._recount_shards(night, checkins, clear=False)

    async def _recount_shards(
        self, night: date, checkins: list[tuple[int, str, str, str, str]], clear: bool
    ) -> None:
        by_shard: dict[int, list[tuple[int, str, str, str, str]]] = defaultdict(list)
        for record in checkins:
            shard = self.keys.shard_of_session(record[1])
            if shard is not None:
                by_shard[shard].append(record)
        for shard in self.keys.all_shards() if clear else sorted(by_shard):
            records = by_shard.get(shard, [])
            # With clear, the first call empties the shard's counters; every later one only adds records
            # not counted yet.
            for start in range(0, max(len(records), 1), RECOUNT_BATCH):
                part = records[start : start + RECOUNT_BATCH]
                await self._recount_part(shard, night, part, clear=clear and start == 0)

    async def _recount_part(
        self, shard: int, night: date, records: list[tuple[int, str, str, str, str]], clear: bool
    ) -> int:
        """Count these records in one shard's counters unless counted already (one atomic script call)."""
        keys = [self.keys.checkins(shard, night), self.keys.checkins_counted(shard, night)]
        hll_index: dict[str, int] = {}
        args: list[Any] = ["1" if clear else "0", COUNTER_TTL_S]
        for record_id, _sid, poi, checkpoint, visitor in records:
            if poi not in hll_index:
                keys.append(self.keys.visitors(shard, night, poi))
                hll_index[poi] = len(keys)  # Lua's KEYS are 1-based
            args += [record_id, poi, checkpoint, visitor, hll_index[poi]]
        return int(await self._recount_script(keys=keys, args=args))

    async def night_counters(self, night: date) -> dict[str, dict[str, int]]:
        """Per POI: entries, check-ins and unique visitors during the night, in two pipelined round trips."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for shard in k.all_shards():
            pipe.hgetall(k.entries(shard, night))
            pipe.hgetall(k.checkins(shard, night))
        parts = await pipe.execute()
        counters: dict[str, dict[str, int]] = defaultdict(lambda: {"entries": 0, "checkins": 0, "unique": 0})
        touched: list[tuple[int, str]] = []
        for shard in k.all_shards():
            entries, checkins = parts[2 * shard], parts[2 * shard + 1]
            for poi, n in entries.items():
                counters[poi]["entries"] += int(n)
            for field_name, n in checkins.items():
                if "|" not in field_name:
                    counters[field_name]["checkins"] += int(n)
            for poi in set(entries) | {f for f in checkins if "|" not in f}:
                touched.append((shard, poi))
        if touched:
            # One pipelined round trip of single-key PFCOUNTs (a multi-key PFCOUNT would merge the
            # sketches; a cluster pipeline sends each to its node).
            pipe = self.redis.pipeline(transaction=False)
            for shard, poi in touched:
                # execute_command: redis-py refuses ``pfcount`` in cluster pipelines (it may be multi-key).
                pipe.execute_command("PFCOUNT", k.visitors(shard, night, poi))
            # Visitors are partitioned by install across shards, so per-shard counts add up.
            for (_shard, poi), n in zip(touched, await pipe.execute()):
                counters[poi]["unique"] += int(n)
        return dict(counters)

    # ---- aggregates ------------------------------------------------------------------------------------------

    async def occupancy(self) -> dict[str, int]:
        """Sessions inside each POI now, summed over shards (one pipelined round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.all_shards():
            pipe.hgetall(self.keys.occupancy(shard))
        totals: dict[str, int] = defaultdict(int)
        for part in await pipe.execute():
            for poi, count in part.items():
                totals[poi] += int(count)
        return {poi: n for poi, n in totals.items() if n}

    async def poi_occupancy(self, poi_id: str) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.all_shards():
            pipe.hget(self.keys.occupancy(shard), poi_id)
        return sum(int(v or 0) for v in await pipe.execute())

    # ---- background sweeps -----------------------------------------------------------------------------------

    async def sweep(self, now: float | None = None, batch: int = 500) -> SweepReport:
        """End sessions past their expiry and close visits with no ping for presence_timeout_s."""
        now = time.time() if now is None else now
        report = SweepReport()
        k = self.keys
        stale_before = now - self.settings.presence_timeout_s
        pipe = self.redis.pipeline(transaction=False)
        for shard in k.all_shards():
            pipe.zrangebyscore(k.active(shard), "-inf", now, start=0, num=batch)
            pipe.zrangebyscore(k.presence(shard), "-inf", stale_before, start=0, num=batch)
        results = await pipe.execute()
        for shard in k.all_shards():
            expired, stale = results[2 * shard], results[2 * shard + 1]
            for sid in expired:
                await self.end_session(sid, "session_expired", now)
                report.expired_sessions += 1
            by_session: dict[str, list[str]] = defaultdict(list)
            for member in stale:
                poi, _, sid = member.rpartition("|")
                by_session[sid].append(poi)
            for sid, pois in by_session.items():
                report.timed_out += len(await self.leave(sid, pois, "timeout", now))
        return report


def ping_night(ts: float) -> date:
    from datetime import UTC, datetime

    return night_of(datetime.fromtimestamp(ts, UTC))
