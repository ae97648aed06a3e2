"""Alembic, driven programmatically so the CLI needs no alembic.ini in the working directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from tourapi.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = settings.database_url
    return config


def upgrade(settings: Settings, revision: str = "heads") -> None:
    command.upgrade(alembic_config(settings), revision)


def revision(settings: Settings, message: str, autogenerate: bool = True) -> None:
    command.revision(alembic_config(settings), message=message, autogenerate=autogenerate)
