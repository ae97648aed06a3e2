"""Access policies: every route handler declares exactly one (tests fail otherwise).

``access(Policy.X)`` returns the handler keyword arguments (guards and opt).
Guards check the role; venue-scoped checks that need a database lookup (for
example "the checkpoint's venue") are done by the service with
``Principal.can_act_on_venue`` / ``can_read_venue``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler

from tourapi.security.principal import Principal, Role


class Policy(StrEnum):
    PUBLIC = "public"  # anyone; no token needed
    VISITOR = "visitor"  # the visitor session named by the path's session_id
    VENUE_READ = "venue_read"  # admin, operator, staff (staff only for their venues)
    VENUE_WRITE = "venue_write"  # admin, staff of the venue
    EDITOR = "editor"  # admin, operator; staff only for their venues' content
    OPERATOR = "operator"  # admin, operator
    ADMIN = "admin"


# /metrics has the OPERATOR policy, but Prometheus cannot renew short-lived login tokens: `tourapi
# metrics-token` mints a long-lived operator token with this scope, which opens only the handlers
# declared with ``access(..., metrics_scrape=True)`` (GET /metrics).
SCRAPE_SCOPE = "metrics"

ALLOWED_ROLES: dict[Policy, frozenset[Role]] = {
    Policy.PUBLIC: frozenset(Role),
    Policy.VISITOR: frozenset({Role.VISITOR}),
    Policy.VENUE_READ: frozenset({Role.ADMIN, Role.OPERATOR, Role.STAFF}),
    Policy.VENUE_WRITE: frozenset({Role.ADMIN, Role.STAFF}),
    Policy.EDITOR: frozenset({Role.ADMIN, Role.OPERATOR, Role.STAFF}),
    Policy.OPERATOR: frozenset({Role.ADMIN, Role.OPERATOR}),
    Policy.ADMIN: frozenset({Role.ADMIN}),
}


def _guard_for(policy: Policy, venue_param: str | None, metrics_scrape: bool) -> Any:
    allowed = ALLOWED_ROLES[policy]

    # One guard per handler, and async: Litestar copies the handler for every guard it calls, and runs
    # a sync guard in the thread pool (a thread hop on every request).
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal) or principal.role not in allowed:
            raise PermissionDeniedException(
                f"this endpoint needs one of the roles: {', '.join(sorted(allowed))}"
            )
        if principal.scope == SCRAPE_SCOPE and not metrics_scrape:
            raise PermissionDeniedException("a metrics scrape token is only valid for GET /metrics")
        if policy is Policy.VISITOR:
            session_id = connection.path_params.get("session_id")
            if session_id is not None and session_id != principal.session_id:
                raise PermissionDeniedException("this session token belongs to another session")
        if venue_param is not None and principal.role is Role.STAFF:
            venue = connection.path_params.get(venue_param)
            if venue is not None and venue not in principal.venues:
                raise PermissionDeniedException(f"staff account is not bound to venue {venue!r}")

    guard.__name__ = f"require_{policy.value}"
    return guard


def access(policy: Policy, *, venue_param: str | None = None, metrics_scrape: bool = False) -> dict[str, Any]:
    """Keyword arguments for a route decorator: ``@get("/x", **access(Policy.OPERATOR))``."""
    opt: dict[str, Any] = {"policy": policy}
    if policy is Policy.PUBLIC:
        opt["exclude_from_auth"] = True
        return {"opt": opt}
    if venue_param:
        opt["venue_param"] = venue_param
    return {"opt": opt, "guards": [_guard_for(policy, venue_param, metrics_scrape)]}
