"""Password hashing with pwdlib's recommended Argon2id parameters."""

from __future__ import annotations

from functools import lru_cache

from pwdlib import PasswordHash

MIN_PASSWORD_LENGTH = 10


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@lru_cache(maxsize=1)
def _timing_decoy() -> str:
    # Verifying against this keeps unknown-username logins as slow as wrong-password ones.
    return _hasher().hash("decoy-password-never-used")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _hasher().verify(password, _timing_decoy())
        return False
    return _hasher().verify(password, password_hash)
