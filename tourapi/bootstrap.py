"""Schema creation for the embedded database, seed rows, and the demo accounts."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tourapi.db.base import Base
from tourapi.db.models import Poi, SyncCounter, User
from tourapi.db.sync import CATALOG
from tourapi.security.keys import ensure_keys

DEMO_ACCOUNTS = (
    ("admin", "admin", ()),
    ("operator", "operator", ()),
    ("staff-nets", "staff", ("master-of-the-nets-garden", "humble-administrators-garden")),
)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: str
    venues: tuple[str, ...]


async def create_embedded_schema(engine: AsyncEngine) -> bool:
    """Create missing tables on SQLite (PostgreSQL uses Alembic). Returns True if the DB was empty."""
    async with engine.begin() as conn:
        existing = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await conn.run_sync(Base.metadata.create_all)
    return "pois" not in existing


async def seed_rows(session: AsyncSession) -> None:
    """Rows every database needs: the sync counter and a first signing key per purpose."""
    if await session.get(SyncCounter, CATALOG) is None:
        session.add(SyncCounter(name=CATALOG, value=0, purged_through=0))
    await ensure_keys(session)
    await session.commit()


def demo_password(secret: str, username: str) -> str:
    """Derived from the persisted demo secret, so it can be shown again at every start without storing it."""
    return (
        "demo-"
        + hmac.new(secret.encode(), f"demo-account:{username}".encode(), hashlib.sha256).hexdigest()[:12]
    )


async def is_catalogue_empty(session: AsyncSession) -> bool:
    return not await session.scalar(select(func.count()).select_from(Poi))


async def ensure_demo_accounts(session: AsyncSession, secret: str) -> list[DemoAccount]:
    from tourapi.domain.auth.services import add_user

    accounts = []
    for username, role, venues in DEMO_ACCOUNTS:
        password = demo_password(secret, username)
        if await session.scalar(select(User.id).where(User.username == username)) is None:
            await add_user(session, username, password, role, list(venues))
        accounts.append(DemoAccount(username, role, password, tuple(venues)))
    return accounts
