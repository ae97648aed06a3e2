"""Accounts: creation (CLI and bootstrap) and password login."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.models import Poi, User, UserVenue
from tourapi.domain.auth.schemas import TokenResponse
from tourapi.errors import ApiError, Unprocessable
from tourapi.runtime import Runtime
from tourapi.security.passwords import hash_password, verify_password
from tourapi.security.principal import ACCOUNT_ROLES, Role
from tourapi.security.tokens import issue_token
from tourapi.web.ratelimit import REDIS_UNAVAILABLE, ip_subject

log = logging.getLogger("tourapi.auth")

USERNAME = re.compile(r"^[a-zA-Z0-9_.-]{3,64}$")


class LoginFailed(ApiError):
    status, slug, title = 401, "login-failed", "Login failed"


async def add_user(
    session: AsyncSession, username: str, password: str, role: str, venues: list[str] | tuple[str, ...] = ()
) -> User:
    """Create or update an account (idempotent on username)."""
    if not USERNAME.match(username):
        raise Unprocessable("username: 3-64 letters, digits, '.', '_' or '-'", field="username")
    try:
        parsed_role = Role(role)
    except ValueError:
        parsed_role = None
    if parsed_role not in ACCOUNT_ROLES:
        raise Unprocessable(f"role must be one of: {', '.join(r.value for r in ACCOUNT_ROLES)}", field="role")
    if parsed_role is Role.STAFF and not venues:
        raise Unprocessable("a staff account needs at least one --venue", field="venues")
    if parsed_role is not Role.STAFF and venues:
        raise Unprocessable("only staff accounts are bound to venues", field="venues")
    for venue in venues:
        poi = await session.get(Poi, venue)
        if poi is None or poi.deleted_at is not None:
            raise Unprocessable(f"no POI with id {venue!r}", field="venues")
    try:
        password_hash = await anyio.to_thread.run_sync(hash_password, password)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="password") from None
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username)
        session.add(user)
    user.password_hash = password_hash
    user.role = parsed_role.value
    user.disabled = False
    user.venues = [UserVenue(poi_id=v) for v in sorted(set(venues))]
    await session.commit()
    return user


async def login(
    runtime: Runtime, session: AsyncSession, username: str, password: str, client_ip: str | None
) -> TokenResponse:
    # Counts every attempt; a successful login takes its attempt back, so only failures are limited.
    # Fails open when Redis is down: operators must reach the console during an incident, and Argon2
    # keeps each guess slow anyway.
    try:
        keys = await runtime.limiter.acquire(
            "login",
            {"ip": ip_subject(client_ip), "user": username.lower()[:64]},
            time.time(),
            "login attempts",
        )
    except REDIS_UNAVAILABLE as exc:
        log.warning("login rate limit skipped (Redis unavailable: %s)", type(exc).__name__)
        keys = []
    user = await session.scalar(select(User).where(User.username == username))
    # Argon2 is deliberately slow: keep it off the event loop.
    ok = await anyio.to_thread.run_sync(verify_password, password, user.password_hash if user else None)
    if user is None or not ok or user.disabled:
        raise LoginFailed("unknown username or wrong password", field="password")
    if keys:
        await runtime.limiter.refund(keys)
    ttl = timedelta(seconds=runtime.settings.access_token_ttl_s)
    token, _ = issue_token(
        runtime.jwt,
        f"user:{user.id}",
        ttl,
        runtime.settings.jwt_issuer,
        typ="access",
        role=user.role,
        name=user.username,
        venues=sorted(v.poi_id for v in user.venues),
    )
    return TokenResponse(access_token=token, token_type="bearer", expires_in=int(ttl.total_seconds()))
