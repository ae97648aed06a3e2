"""Signing keys for JWTs and QR tokens, identified by a key id (kid).

Key material is HMAC-SHA256(master secret, "<purpose>:<kid>"), so the database
stores only kids and their status. Rotation adds a kid and makes it the
signer; old kids keep verifying until they are retired.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tourapi.db.base import utcnow
from tourapi.db.models import SigningKey

PURPOSES = ("jwt", "qr")


class UnknownKey(Exception):
    def __init__(self, kid: str | None, retired: bool) -> None:
        super().__init__("signing key retired" if retired else "unknown signing key")
        self.kid = kid
        self.retired = retired


@dataclass
class Keyring:
    master: bytes
    active: dict[str, list[str]] = field(default_factory=dict)  # purpose -> kids, newest first
    retired: dict[str, set[str]] = field(default_factory=dict)

    def material(self, purpose: str, kid: str) -> bytes:
        return hmac.new(self.master, f"{purpose}:{kid}".encode(), hashlib.sha256).digest()

    def signer(self, purpose: str) -> tuple[str, bytes]:
        kids = self.active.get(purpose)
        if not kids:
            raise RuntimeError(
                f"no active {purpose} signing key; run `tourapi keys rotate --purpose {purpose}`"
            )
        return kids[0], self.material(purpose, kids[0])

    def verifier(self, purpose: str, kid: str | None) -> bytes:
        if kid is not None and kid in self.active.get(purpose, ()):
            return self.material(purpose, kid)
        raise UnknownKey(kid, retired=kid in self.retired.get(purpose, set()))

    def replace(self, other: Keyring) -> None:
        self.active, self.retired = other.active, other.retired


async def load_keyring(session: AsyncSession, master_secret: str) -> Keyring:
    rows = (
        await session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid))
    ).all()
    ring = Keyring(master=master_secret.encode())
    for row in rows:
        if row.status == "active":
            ring.active.setdefault(row.purpose, []).append(row.kid)
        else:
            ring.retired.setdefault(row.purpose, set()).add(row.kid)
    return ring


async def ensure_keys(session: AsyncSession) -> None:
    """Create a first key for each purpose that has none (fresh databases)."""
    present = set(
        (await session.scalars(select(SigningKey.purpose).where(SigningKey.status == "active"))).all()
    )
    for purpose in PURPOSES:
        if purpose not in present:
            session.add(SigningKey(kid=new_kid(), purpose=purpose, status="active"))


async def rotate(session: AsyncSession, purpose: str) -> str:
    kid = new_kid()
    session.add(SigningKey(kid=kid, purpose=purpose, status="active", created_at=utcnow()))
    return kid


async def retire(session: AsyncSession, kid: str) -> SigningKey | None:
    row = await session.get(SigningKey, kid)
    if row is not None and row.status != "retired":
        row.status = "retired"
        row.retired_at = utcnow()
    return row


def new_kid() -> str:
    # Short: the kid rides inside every QR token.
    return secrets.token_hex(2)
