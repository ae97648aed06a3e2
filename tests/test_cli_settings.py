"""The tourapi command on both set-ups, settings validation, and migrations that match the models."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import PG_ADMIN_URL, REDIS_URL, SECRET, _admin_execute, _pg_url, _skipped

from tourapi.settings import Settings, SettingsError


def tourapi(
    *args: str, env: dict[str, str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOURAPI_")}
    return subprocess.run(
        [sys.executable, "-m", "tourapi", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=cwd,
        timeout=180,
    )


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"TOURAPI_DATABASE_URL": "mysql://x"}, "TOURAPI_DATABASE_URL"),
        ({"TOURAPI_DATABASE_URL": "postgresql+asyncpg://u@h/db"}, "TOURAPI_SECRET_KEY is required"),
        ({"TOURAPI_SECRET_KEY": "short"}, "at least 32"),
        ({"TOURAPI_LIVE_SHARDS": "0"}, "TOURAPI_LIVE_SHARDS"),
        ({"TOURAPI_REDIS_URL": "http://nope"}, "TOURAPI_REDIS_URL"),
    ],
)
def test_a_wrong_setting_fails_with_a_one_line_reason(monkeypatch, env: dict, needle: str) -> None:
    for key in list(os.environ):
        if key.startswith("TOURAPI_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as error:
        Settings.from_env()
    message = str(error.value)
    assert needle in message and "\n" not in message


def test_cli_refuses_bad_settings_with_one_line(tmp_path: Path) -> None:
    result = tourapi("fixtures", "load", env={"TOURAPI_DATABASE_URL": "mysql://x"}, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "TOURAPI_DATABASE_URL" in result.stderr


def test_embedded_serve_refuses_several_workers(tmp_path: Path) -> None:
    result = tourapi("serve", "--workers", "2", env={"TOURAPI_SECRET_KEY": SECRET}, cwd=tmp_path)
    assert result.returncode != 0 and "TOURAPI_REDIS_URL" in result.stderr


def _cli_env(backend: str, tmp_path: Path, database: str | None) -> dict[str, str]:
    if backend == "embedded":
        return {
            "TOURAPI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "TOURAPI_SECRET_KEY": SECRET,
        }
    return {
        "TOURAPI_DATABASE_URL": _pg_url(database or ""),
        "TOURAPI_REDIS_URL": REDIS_URL,
        "TOURAPI_SECRET_KEY": SECRET,
    }


@pytest.mark.parametrize("setup", ["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
async def test_every_command_on_both_setups(setup: str, tmp_path: Path) -> None:
    backend = setup
    if backend in _skipped:
        pytest.skip(f"{backend}: {_skipped[backend]}")
    database = f"tourapi_cli_{uuid.uuid4().hex[:8]}"
    if backend == "postgis":
        await _admin_execute(f"CREATE DATABASE {database}")
    env = _cli_env(backend, tmp_path, database)
    try:
        if backend == "postgis":
            refused = tourapi("fixtures", "load", env=env)
            assert refused.returncode != 0 and "tourapi db upgrade" in refused.stderr
        upgraded = tourapi("db", "upgrade", env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        first = tourapi("fixtures", "load", env=env)
        assert first.returncode == 0, first.stderr
        assert "pois.geojson: 31 records, 31 inserted or updated" in first.stdout
        again = tourapi("fixtures", "load", env=env)
        assert "pois.geojson: 31 records, 0 inserted or updated" in again.stdout, again.stdout

        added = tourapi(
            "users",
            "add",
            "gatekeeper",
            "--role",
            "staff",
            "--venue",
            "lion-grove-garden",
            env=env,
            stdin="correct horse battery\n",
        )
        assert added.returncode == 0, added.stderr
        short = tourapi("users", "add", "weak", "--role", "operator", env=env, stdin="short\n")
        assert short.returncode != 0 and "password" in short.stderr
        no_venue = tourapi("users", "add", "lost", "--role", "staff", env=env, stdin="long enough pass\n")
        assert no_venue.returncode != 0 and "venue" in no_venue.stderr

        rotated = tourapi("keys", "rotate", "--purpose", "qr", env=env)
        assert rotated.returncode == 0
        kid = rotated.stdout.strip().split()[-1]
        listed = tourapi("keys", "list", env=env).stdout
        assert kid in listed
        retired = tourapi("keys", "retire", kid, env=env)
        assert retired.returncode == 0 and kid in tourapi("keys", "list", env=env).stdout
        assert "retired" in tourapi("keys", "list", env=env).stdout
    finally:
        if backend == "postgis":
            await _admin_execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.mark.postgis
async def test_migrations_match_the_models() -> None:
    """Alembic's schema on PostgreSQL has exactly the tables, columns and types the models declare."""
    if "postgis" in _skipped:
        pytest.skip(_skipped["postgis"])
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from geoalchemy2 import alembic_helpers
    from sqlalchemy.ext.asyncio import create_async_engine

    from tourapi.db.base import Base
    from tourapi.db.migrate import upgrade

    database = f"tourapi_mig_{uuid.uuid4().hex[:8]}"
    await _admin_execute(f"CREATE DATABASE {database}")
    try:
        settings = Settings(database_url=_pg_url(database), secret_key=SECRET)
        import asyncio

        await asyncio.to_thread(upgrade, settings, "heads")
        engine = create_async_engine(_pg_url(database))
        async with engine.connect() as conn:

            def diff(sync_conn):
                context = MigrationContext.configure(
                    sync_conn, opts={"include_object": alembic_helpers.include_object, "compare_type": True}
                )
                return compare_metadata(context, Base.metadata)

            differences = await conn.run_sync(diff)
        await engine.dispose()
        assert differences == [], differences
    finally:
        await _admin_execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def test_admin_url_is_configurable() -> None:
    assert PG_ADMIN_URL.startswith("postgresql+asyncpg://")
