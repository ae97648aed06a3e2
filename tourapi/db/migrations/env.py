"""Alembic environment: async engine, GeoAlchemy2 helpers for geometry columns and GiST indexes."""

from __future__ import annotations

import asyncio

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tourapi.db import models  # noqa: F401  (registers every table)
from tourapi.db.base import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        include_object=alembic_helpers.include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
        # One transaction per revision: a revision with an autocommit block (CREATE INDEX CONCURRENTLY)
        # then commits only its own work.
        transaction_per_migration=True,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


url = config.attributes["database_url"]
if context.is_offline_mode():
    _configure(url=url)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async(url))
