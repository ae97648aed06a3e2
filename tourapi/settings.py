"""Typed, validated settings (environment prefix ``TOURAPI_``).

Nothing here runs at import time: ``Settings.from_env()`` is called by the CLI
and the ASGI factory, and tests build ``Settings(...)`` directly.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURES = REPO_ROOT / "fixtures" / "suzhou"
MIN_SECRET_LENGTH = 32
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class SettingsError(Exception):
    """A setting is wrong; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOURAPI_", extra="ignore", frozen=True)

    # Storage. The embedded default is a SQLite file plus an in-process Redis.
    database_url: str = "sqlite+aiosqlite:///./tourapi.db"
    redis_url: str | None = None
    redis_cluster: bool = Field(default=False, description="TOURAPI_REDIS_URL names a Redis Cluster node")
    redis_namespace: str = Field(
        default="tourapi",
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="prefix of every Redis key and channel",
    )
    redis_timeout_s: float = Field(
        default=0.5, gt=0, le=10, description="socket and connect timeout for Redis"
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_timeout_s: float = Field(default=5.0, gt=0, le=60)

    # Secrets. Required unless embedded; the embedded demo generates one into secret_file.
    secret_key: SecretStr | None = None
    secret_file: Path = Path("./.tourapi-secret")

    public_base_url: str = "http://127.0.0.1:8000"
    # Browser origins of the visitor web app and of a console hosted elsewhere (the built-in /ops is
    # same-origin and needs none). Exact origins only: no wildcard, no path.
    cors_origins: list[str] = Field(default_factory=list, max_length=32)
    fixtures_path: Path = DEFAULT_FIXTURES
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=50_000_000)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Auth.
    access_token_ttl_s: int = Field(default=3600, ge=60, le=7 * 86400)
    jwt_issuer: str = "tourapi"

    # Live state.
    live_shards: int = Field(default=16, ge=1, le=1024, description="hash-tag shards for Redis Cluster")
    session_idle_s: int = Field(default=1800, ge=60, le=86400)
    session_grace_after_night_h: int = Field(default=3, ge=0, le=24)
    presence_timeout_s: int = Field(default=600, ge=30, le=7200)
    max_ping_accuracy_m: float = Field(default=50.0, gt=0, le=1000)
    hysteresis_m: float = Field(default=15.0, ge=0, le=500)
    max_ping_age_s: int = Field(default=6 * 3600, ge=60, le=7 * 86400)
    max_clock_skew_s: int = Field(default=120, ge=0, le=3600)
    snapshot_interval_s: int = Field(default=300, ge=5, le=3600)
    aggregate_interval_s: float = Field(default=1.0, gt=0, le=60)
    event_stream_maxlen: int = Field(default=10_000, ge=100, le=10_000_000)

    # Abuse: multiplies every rate limit in tourapi/web/ratelimit.py (load tests raise it).
    rate_limit_scale: float = Field(default=1.0, gt=0, le=10_000)

    # Check-ins.
    max_late_checkin_h: int = Field(default=48, ge=0, le=24 * 30)

    # Console.
    tile_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _supported_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin like https://app.example.com (no wildcard, no path)"
                )
        return [origin.lower() for origin in value]

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_needs_secret(self) -> Settings:
        if not self.embedded_database and self.secret_key is None:
            raise ValueError(
                "TOURAPI_SECRET_KEY is required with PostgreSQL (generate one: openssl rand -hex 32)"
            )
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"TOURAPI_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
        return self

    @property
    def embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def is_embedded(self) -> bool:
        return self.embedded_database and self.embedded_redis

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format == "auto" and not self.embedded_database)

    def resolved_secret(self) -> str:
        """The signing secret; the embedded demo creates and persists one on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.secret_file
        if path.exists():
            value = path.read_text().strip()
            if len(value) >= MIN_SECRET_LENGTH:
                return value
        value = secrets.token_hex(32)
        path.write_text(value + "\n")
        path.chmod(0o600)
        return value

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read the environment; a bad value raises SettingsError with a one-line reason."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"])
        name = f"TOURAPI_{field.upper()}" if field else "settings"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if field else message)
    return "invalid setting: " + "; ".join(parts)
