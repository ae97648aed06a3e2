"""Who is calling: a staff/operator/admin account, or an anonymous visitor session."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    STAFF = "staff"
    VISITOR = "visitor"


ACCOUNT_ROLES = (Role.ADMIN, Role.OPERATOR, Role.STAFF)


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str  # "user:<id>" or "session:<id>"
    role: Role
    username: str | None = None
    venues: frozenset[str] = frozenset()
    session_id: str | None = None
    route_id: str | None = None  # the route a visitor session follows
    install_hash: str | None = None  # keyed hash of the visitor's install id (never the id itself)
    scope: str | None = None  # a narrowed access token, e.g. "metrics" (tourapi.security.policies)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_act_on_venue(self, poi_id: str) -> bool:
        return self.role is Role.ADMIN or (self.role is Role.STAFF and poi_id in self.venues)

    def can_read_venue(self, poi_id: str) -> bool:
        return self.role is Role.OPERATOR or self.can_act_on_venue(poi_id)
