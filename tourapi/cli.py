"""The ``tourapi`` command. Every command works on both storage set-ups."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tourapi.settings import Settings, SettingsError

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _run(settings: Settings, job: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``job(runtime)`` with a runtime whose connections are closed afterwards."""
    from tourapi.bootstrap import create_embedded_schema, seed_rows
    from tourapi.errors import ApiError
    from tourapi.runtime import Runtime

    async def main() -> T:
        runtime = Runtime.create(settings)
        try:
            if settings.embedded_database:
                await create_embedded_schema(runtime.engine)
            else:
                await _require_migrated(runtime)
            async with runtime.sessionmaker() as session:
                await seed_rows(session)
            await runtime.reload_keys()
            return await job(runtime)
        finally:
            await runtime.stop()

    try:
        return asyncio.run(main())
    except ApiError as exc:
        where = f" ({exc.field})" if exc.field else ""
        raise click.ClickException(f"{exc.detail}{where}") from None


async def _require_migrated(runtime: Any) -> None:
    from sqlalchemy import inspect

    async with runtime.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    if "alembic_version" not in tables:
        raise click.ClickException("the database has no tourapi schema yet; run `tourapi db upgrade` first")


@click.group()
@click.version_option(package_name="tourapi")
def main() -> None:
    """tourapi: the backend for night-tour apps."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API with granian (a production ASGI server)."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = _settings()
    if settings.embedded_redis and workers > 1:
        raise click.ClickException(
            "--workers > 1 needs a shared Redis: the embedded in-process Redis lives in one process "
            "(set TOURAPI_REDIS_URL)"
        )
    if workers > 1:
        # Before anything imports prometheus_client: the workers' metrics go to shared files.
        from tourapi.observability.multiproc import prepare_multiprocess_dir

        prepare_multiprocess_dir()
    if settings.embedded_database:
        _bootstrap_embedded(settings, host, port)
    else:
        _run(settings, lambda runtime: asyncio.sleep(0))  # fail fast on a missing schema or bad connection
    Granian(
        "tourapi.asgi:app_factory",
        factory=True,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        log_access=False,
        backlog=2048,
        # A worker that dies (OOM, SIGKILL) is replaced instead of taking the server down.
        respawn_failed_workers=True,
        respawn_interval=1.0,
    ).serve()


def _bootstrap_embedded(settings: Settings, host: str, port: int) -> None:
    from tourapi.bootstrap import ensure_demo_accounts, is_catalogue_empty
    from tourapi.fixtures import load_fixtures

    async def job(runtime: Any) -> Any:
        async with runtime.sessionmaker() as session:
            empty = await is_catalogue_empty(session)
        if empty:
            report = await load_fixtures(runtime, settings.fixtures_path)
            click.echo(f"loaded Suzhou fixtures: {', '.join(f'{k}: {v[0]}' for k, v in report.items())}")
        async with runtime.sessionmaker() as session:
            return await ensure_demo_accounts(session, settings.resolved_secret())

    accounts = _run(settings, job)
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    click.echo("")
    click.echo("tourapi on the embedded default (SQLite file + in-process Redis). Demo accounts:")
    for a in accounts:
        venues = f"  venues: {', '.join(a.venues)}" if a.venues else ""
        click.echo(f"  {a.role:<9} {a.username:<12} password: {a.password}{venues}")
    click.echo("Try:")
    for path in (
        "/v1/pois?lon=120.6300&lat=31.3150&radius=800&lang=en",
        "/v1/geofences/containing?lon=120.6246&lat=31.3262",
        "/v1/routes",
        "/ogc/collections",
        "/ops  (the operators' console; log in as operator, then run `tourapi demo-traffic`)",
        "/schema",
        "/readyz",
    ):
        click.echo(f"  {base}{path}")
    click.echo("")


@main.group()
def db() -> None:
    """Database schema (PostgreSQL: Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (PostgreSQL), or create the schema (embedded SQLite)."""
    settings = _settings()
    if settings.embedded_database:
        _run(settings, lambda runtime: asyncio.sleep(0))
        click.echo("embedded SQLite schema is up to date")
        return
    from tourapi.db.migrate import upgrade

    upgrade(settings, revision)
    click.echo(f"database upgraded to {revision}")


@main.group()
def fixtures() -> None:
    """Catalogue fixtures."""


@fixtures.command("load")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
def fixtures_load(path: Path | None) -> None:
    """Upsert fixtures from PATH (default: the Suzhou fixtures). Safe to run again."""
    from tourapi.fixtures import FixtureError, load_fixtures

    settings = _settings()
    folder = path or settings.fixtures_path
    try:
        report = _run(settings, lambda runtime: load_fixtures(runtime, folder))
    except FixtureError as exc:
        raise click.ClickException(str(exc)) from None
    for name, (total, changed) in report.items():
        click.echo(f"{name}: {total} records, {changed} inserted or updated")


@main.group()
def users() -> None:
    """Staff, operator and admin accounts."""


@users.command("add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["admin", "operator", "staff"]))
@click.option("--venue", "venues", multiple=True, help="POI id a staff account may act on (repeatable)")
def users_add(username: str, role: str, venues: tuple[str, ...]) -> None:
    """Create or update an account. The password comes from stdin when piped, else a prompt."""
    from tourapi.domain.auth.services import add_user

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = _settings()

    async def job(runtime: Any) -> Any:
        async with runtime.sessionmaker() as session:
            return await add_user(session, username, password, role, list(venues))

    _run(settings, job)
    click.echo(f"account {username!r} ({role}) saved")


@main.group()
def keys() -> None:
    """Signing keys for JWTs and QR codes."""


@keys.command("list")
def keys_list() -> None:
    from sqlalchemy import select

    from tourapi.db.models import SigningKey

    async def job(runtime: Any) -> Any:
        async with runtime.sessionmaker() as session:
            return (
                await session.scalars(select(SigningKey).order_by(SigningKey.purpose, SigningKey.created_at))
            ).all()

    for row in _run(_settings(), job):
        click.echo(f"{row.purpose:<4} {row.kid}  {row.status:<8} created {row.created_at:%Y-%m-%d %H:%M}")


@keys.command("rotate")
@click.option("--purpose", required=True, type=click.Choice(["jwt", "qr"]))
def keys_rotate(purpose: str) -> None:
    """Add a new signing key; it signs from now on, older keys still verify until retired."""
    from tourapi.security.keys import rotate

    async def job(runtime: Any) -> str:
        async with runtime.sessionmaker() as session:
            kid = await rotate(session, purpose)
            await session.commit()
            return kid

    click.echo(f"new {purpose} key: {_run(_settings(), job)}")


@keys.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Refuse tokens signed with KID from now on."""
    from tourapi.security.keys import retire

    async def job(runtime: Any) -> Any:
        async with runtime.sessionmaker() as session:
            row = await retire(session, kid)
            await session.commit()
            return row

    if _run(_settings(), job) is None:
        raise click.ClickException(f"no key {kid!r}")
    click.echo(f"key {kid} retired")


@main.group()
def sync() -> None:
    """The /v1/sync delta feed."""


@sync.command("purge")
@click.option(
    "--older-than-days",
    required=True,
    type=click.IntRange(0, 36500),
    help="hard-delete tombstones deleted more than this many days ago",
)
def sync_purge(older_than_days: int) -> None:
    """Hard-delete old tombstones (where nothing references them); older cursors then get 410 resync."""
    import tourapi.app  # noqa: F401  (every feature registers its sync source on import)
    from tourapi.domain.sync.services import purge_tombstones

    report = _run(_settings(), lambda runtime: purge_tombstones(runtime, older_than_days))
    purged = ", ".join(f"{k}: {v}" for k, v in sorted(report.purged.items())) or "none"
    kept = ", ".join(f"{k}: {v}" for k, v in sorted(report.kept.items())) or "none"
    click.echo(f"purged tombstones deleted before {report.cutoff:%Y-%m-%d %H:%M} UTC: {purged}")
    click.echo(f"kept (still referenced): {kept}; purged_through = {report.purged_through}")


@main.group()
def live() -> None:
    """Live state in Redis (sessions, occupancy, nightly counters)."""


@live.command("rebuild")
@click.option(
    "--night",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="the night (YYYY-MM-DD, noon to noon Asia/Shanghai); default: tonight",
)
def live_rebuild(night: Any) -> None:
    """Recount a night's check-in counters and unique visitors in Redis from the database."""
    from datetime import UTC, datetime

    from tourapi.domain.checkins.counters import rebuild_night
    from tourapi.timeutil import night_of

    settings = _settings()
    if settings.embedded_redis:
        raise click.ClickException(
            "the embedded in-process Redis lives inside the running server; live rebuild needs a shared "
            "Redis (set TOURAPI_REDIS_URL)"
        )
    day = night.date() if night is not None else night_of(datetime.now(UTC))
    report = _run(settings, lambda runtime: rebuild_night(runtime, day))
    click.echo(
        f"night {day.isoformat()}: {report['checkins']} check-ins recounted, "
        f"{report['entries_topped_up']} entries restored from snapshots, "
        f"{report['marked_counted']} records marked counted"
    )


@main.command("metrics-token")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="validity")
def metrics_token(days: int) -> None:
    """Print a bearer token for Prometheus, valid for GET /metrics only."""
    from tourapi.observability.metrics import mint_scrape_token

    async def job(runtime: Any) -> Any:
        return mint_scrape_token(runtime, days)

    token, expires = _run(_settings(), job)
    click.echo(token)
    click.echo(
        f"valid for GET /metrics only, until {expires:%Y-%m-%d %H:%M} UTC "
        "(revoke: rotate, then retire the JWT key that signed it)",
        err=True,
    )


@main.command("demo-traffic")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True, help="a running tourapi")
@click.option("--visitors", default=200, show_default=True, type=click.IntRange(1, 20000))
@click.option(
    "--speed",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="simulated seconds per real second",
)
@click.option(
    "--duration",
    default=600.0,
    show_default=True,
    type=click.FloatRange(5, 86400),
    help="real seconds; the simulated evening (18:30-23:30) is fitted into them",
)
@click.option(
    "--hotspot",
    default="pipayu-pingtan-teahouse",
    show_default=True,
    help="venue whose performance fills it (raises alerts); '' for none",
)
@click.option(
    "--username",
    default="operator",
    show_default=True,
    help="operator account that reads the venues' QR checkpoints, for check-ins",
)
@click.option(
    "--password",
    envvar="TOURAPI_DEMO_PASSWORD",
    default=None,
    help="its password (env TOURAPI_DEMO_PASSWORD); on the embedded default it is derived "
    "from the local secret file; without one, visitors ping but do not check in",
)
@click.option("--seed", type=int, default=None, help="for a reproducible evening")
@click.option("--keep-sessions", is_flag=True, help="leave the sessions open at the end (they expire)")
def demo_traffic(
    base_url: str,
    visitors: int,
    speed: float,
    duration: float,
    hotspot: str,
    username: str,
    password: str | None,
    seed: int | None,
    keep_sessions: bool,
) -> None:
    """Simulate an evening of visitors against a running server, to watch the console at /ops."""
    import httpx

    from tourapi.demo.traffic import DemoConfig, local_demo_password, run_demo

    config = DemoConfig(
        base_url=base_url.rstrip("/"),
        visitors=visitors,
        speed=speed,
        duration=duration,
        hotspot=hotspot or None,
        username=username or None,
        password=password or (local_demo_password(username) if username else None),
        seed=seed,
        end_sessions=not keep_sessions,
    )
    click.echo(
        f"demo traffic: {visitors} visitors, {duration:.0f} s at {speed:g}x against {config.base_url}"
        f" (watch {config.base_url}/ops)"
    )
    try:
        report = asyncio.run(run_demo(config, say=click.echo))
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {config.base_url}: {exc}") from None
    except KeyboardInterrupt:  # pragma: no cover
        raise click.Abort() from None
    click.echo(
        f"done: {report.sessions} sessions, {report.pings_accepted} pings accepted, "
        f"{report.pings_rejected} rejected, {report.checkins} check-ins, "
        f"transitions {dict(report.transitions)}, errors {dict(report.errors) or 'none'}, "
        f"session starts paced by the per-address limit {report.paced_starts}"
    )


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
