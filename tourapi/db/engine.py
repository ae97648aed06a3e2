"""Engine and session factory for either backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tourapi.settings import Settings


def make_engine(settings: Settings) -> AsyncEngine:
    if settings.embedded_database:
        engine = create_async_engine(
            settings.database_url,
            connect_args={"timeout": settings.db_timeout_s},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.db_timeout_s,
            "command_timeout": settings.db_timeout_s * 6,
            "server_settings": {"application_name": "tourapi", "timezone": "UTC"},
        },
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
