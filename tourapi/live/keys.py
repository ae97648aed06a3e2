"""Redis key layout for live state (see docs/architecture.md, "Live state in Redis").

Visitor state is split into ``shards`` by the install id, and every key of a
shard carries the hash tag ``{s<n>}``. A ping batch touches one shard only, so
its Lua script runs on one Redis Cluster node; shards spread over the nodes.
Operator aggregates read every shard in one pipeline. Keys that are not per
visitor (event stream, crowd levels, alerts, leader lock) carry ``{g}``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class LiveKeys:
    namespace: str
    shards: int

    # ---- identities ------------------------------------------------------------------------------------------

    def shard_of_install(self, install_hash: str) -> int:
        return int(install_hash[:8], 16) % self.shards

    def new_session_id(self, shard: int) -> str:
        return f"{shard:x}-{secrets.token_hex(10)}"

    def shard_of_session(self, session_id: str) -> int | None:
        head, sep, rest = session_id.partition("-")
        if not sep or len(rest) != 20 or not head or len(head) > 4:
            return None
        try:
            shard = int(head, 16)
        except ValueError:
            return None
        return shard if shard < self.shards else None

    # ---- per shard -------------------------------------------------------------------------------------------

    def _shard(self, shard: int) -> str:
        return f"{self.namespace}:{{s{shard}}}"

    def session(self, shard: int, session_id: str) -> str:
        return f"{self._shard(shard)}:ses:{session_id}"

    def occupancy(self, shard: int) -> str:
        """HASH poi -> sessions inside now (this shard)."""
        return f"{self._shard(shard)}:occ"

    def presence(self, shard: int) -> str:
        """ZSET "<poi>|<session>" -> last time seen inside; stale members time out."""
        return f"{self._shard(shard)}:presence"

    def active(self, shard: int) -> str:
        """ZSET session -> sliding expiry time."""
        return f"{self._shard(shard)}:active"

    def route_active(self, shard: int, route_id: str) -> str:
        return f"{self._shard(shard)}:route:{route_id}"

    def install(self, shard: int, install_hash: str) -> str:
        """SET of the install's sessions, for erasure by install id."""
        return f"{self._shard(shard)}:inst:{install_hash}"

    def install_rate(self, shard: int, install_hash: str, minute: int) -> str:
        """STRING: pings sent by the install during one minute (rate limit)."""
        return f"{self._shard(shard)}:rl:{install_hash}:{minute}"

    def transitions(self, shard: int) -> str:
        """Capped STREAM of enter/exit/dwell events (no session ids, no positions)."""
        return f"{self._shard(shard)}:transitions"

    def entries(self, shard: int, night: date) -> str:
        """HASH poi -> entries during the night."""
        return f"{self._shard(shard)}:entries:{night.isoformat()}"

    def visitors(self, shard: int, night: date, poi_id: str) -> str:
        """HyperLogLog of install hashes that entered the POI during the night."""
        return f"{self._shard(shard)}:hll:{night.isoformat()}:{poi_id}"

    def checkins(self, shard: int, night: date) -> str:
        """HASH poi and "poi|checkpoint" -> check-ins during the night."""
        return f"{self._shard(shard)}:checkins:{night.isoformat()}"

    def checkins_counted(self, shard: int, night: date) -> str:
        """SET of the ids of the night's check-in records already counted (makes counting idempotent)."""
        return f"{self._shard(shard)}:checkins-counted:{night.isoformat()}"

    # ---- global ----------------------------------------------------------------------------------------------

    def global_key(self, name: str) -> str:
        return f"{self.namespace}:{{g}}:{name}"

    def all_shards(self) -> range:
        return range(self.shards)


def install_hash(secret: str, install_id: str) -> str:
    """A keyed hash of the app's install id: stable for counting, not reversible, never shown."""
    return hmac.new(secret.encode(), f"install:{install_id}".encode(), hashlib.sha256).hexdigest()[:20]
