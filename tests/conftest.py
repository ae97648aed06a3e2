"""Test harness: every API test runs on both storage set-ups.

* ``embedded``: SQLite file + in-process Redis (fakeredis), always available.
* ``postgis``: PostgreSQL + PostGIS (schema from the Alembic migrations) + a real Redis.
  URLs come from TOURAPI_TEST_POSTGRES_URL (an admin connection that may create
  databases) and TOURAPI_TEST_REDIS_URL, defaulting to the local services.
  When they are not reachable the postgis tests are skipped and the summary
  says so plainly; with CI=true an unreachable service is an error instead.

Each test gets its own copy of a database seeded once per run with the Suzhou
fixtures and the demo accounts (a copied SQLite file, or CREATE DATABASE ...
TEMPLATE on PostgreSQL), so tests may write freely.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tourapi.app import create_app
from tourapi.bootstrap import create_embedded_schema, demo_password, ensure_demo_accounts, seed_rows
from tourapi.fixtures import load_fixtures
from tourapi.runtime import Runtime
from tourapi.settings import DEFAULT_FIXTURES, Settings

SECRET = "test-secret-" + "x" * 40
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "TOURAPI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TOURAPI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# With TOURAPI_TEST_REDIS_CLUSTER=1 the URL names a Redis Cluster node (scripts/redis-cluster.sh).
REDIS_CLUSTER = os.environ.get("TOURAPI_TEST_REDIS_CLUSTER", "") in ("1", "true", "yes")
BACKENDS = [b for b in os.environ.get("TOURAPI_TEST_BACKENDS", "embedded,postgis").split(",") if b]
_skipped: dict[str, str] = {}


def _reachable(url: str, default_port: int) -> str | None:
    parsed = urlparse(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return None
    except OSError as exc:
        return f"{parsed.hostname}:{parsed.port or default_port} not reachable ({exc.strerror or exc})"


def _postgis_unavailable() -> str | None:
    return _reachable(PG_ADMIN_URL, 5432) or _reachable(REDIS_URL, 6379)


def pytest_configure(config: pytest.Config) -> None:
    if "postgis" in BACKENDS and (reason := _postgis_unavailable()):
        if IN_CI:
            raise pytest.UsageError(f"CI=true but PostgreSQL/Redis are not available: {reason}")
        _skipped["postgis"] = reason


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for backend, reason in _skipped.items():
        terminalreporter.write_sep(
            "=", f"SKIPPED the {backend} backend (PostgreSQL+PostGIS and real Redis): {reason}", yellow=True
        )
        terminalreporter.write_line(
            "Only the embedded default (SQLite + in-process Redis) was tested. Start PostgreSQL with PostGIS and "
            "Redis, or set TOURAPI_TEST_POSTGRES_URL / TOURAPI_TEST_REDIS_URL, to run the full suite."
        )


@dataclass
class Seeded:
    """A seeded database per backend, copied for each test."""

    backend: str
    template: str  # SQLite file path, or PostgreSQL template database name


def _pg_url(database: str) -> str:
    parsed = urlparse(PG_ADMIN_URL)
    return parsed._replace(path=f"/{database}").geturl()


def make_settings(database_url: str, redis_url: str | None, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_cluster=REDIS_CLUSTER and redis_url is not None,
        secret_key=SECRET,
        fixtures_path=DEFAULT_FIXTURES,
        log_format="console",
        log_level="WARNING",
        **overrides,
    )


async def _admin_execute(*statements: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _seed(settings: Settings) -> None:
    runtime = Runtime.create(settings)
    try:
        if settings.embedded_database:
            await create_embedded_schema(runtime.engine)
        async with runtime.sessionmaker() as session:
            await seed_rows(session)
        await runtime.reload_keys()
        await load_fixtures(runtime, settings.fixtures_path)
        async with runtime.sessionmaker() as session:
            await ensure_demo_accounts(session, SECRET)
    finally:
        await runtime.stop()


@pytest.fixture(scope="session")
async def seeded_embedded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("template") / "template.db"
    await _seed(make_settings(f"sqlite+aiosqlite:///{path}", None))
    return Seeded("embedded", str(path))


@pytest.fixture(scope="session")
async def seeded_postgis() -> AsyncIterator[Seeded]:
    from tourapi.db.migrate import upgrade

    name = f"tourapi_tpl_{uuid.uuid4().hex[:8]}"
    await _admin_execute(f"CREATE DATABASE {name}")
    try:
        await _admin_execute_on(name, "CREATE EXTENSION IF NOT EXISTS postgis")
        settings = make_settings(_pg_url(name), REDIS_URL)
        await asyncio.to_thread(upgrade, settings, "heads")
        await _seed(settings)
        yield Seeded("postgis", name)
    finally:
        await _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _admin_execute_on(database: str, statement: str) -> None:
    engine = create_async_engine(_pg_url(database), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        params = []
        for backend in BACKENDS:
            marks = [pytest.mark.postgis, pytest.mark.redis_server] if backend == "postgis" else []
            if backend in _skipped:
                marks.append(pytest.mark.skip(reason=f"{backend} backend unavailable: {_skipped[backend]}"))
            params.append(pytest.param(backend, marks=marks, id=backend))
        metafunc.parametrize("backend", params)


@pytest.fixture
def seeded(backend: str, request: pytest.FixtureRequest) -> Seeded:
    return request.getfixturevalue(f"seeded_{backend}")


@pytest.fixture
async def settings(seeded: Seeded, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings pointing at a fresh copy of the seeded database for this test."""
    if seeded.backend == "embedded":
        target = tmp_path / "tourapi.db"
        shutil.copyfile(seeded.template, target)
        yield make_settings(f"sqlite+aiosqlite:///{target}", None)
        return
    name = f"tourapi_t_{uuid.uuid4().hex[:10]}"
    await _admin_execute(f"CREATE DATABASE {name} TEMPLATE {seeded.template}")
    # A namespace per test keeps parallel test runs on one Redis apart.
    namespace = f"t{uuid.uuid4().hex[:12]}"
    try:
        yield make_settings(_pg_url(name), REDIS_URL, redis_namespace=namespace)
    finally:
        await _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await _drop_namespace(namespace)


async def _drop_namespace(namespace: str) -> None:
    import redis.asyncio as aioredis

    client = (
        aioredis.RedisCluster.from_url(REDIS_URL) if REDIS_CLUSTER else aioredis.Redis.from_url(REDIS_URL)
    )
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        for key in keys:  # one by one: keys of several cluster slots
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture
async def runtime(settings: Settings) -> Runtime:
    return Runtime.create(settings)


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run the ASGI lifespan in this event loop, so tests share the app's connections and loop."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


@pytest.fixture
async def app(settings: Settings, runtime: Runtime) -> AsyncIterator[Any]:
    application = create_app(settings, runtime)
    async with lifespan(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as test_client:
        yield test_client


@pytest.fixture
async def server_url(app: Any) -> AsyncIterator[str]:
    """The same app behind a real HTTP server in this event loop (for streaming responses)."""
    import uvicorn

    # A bounded graceful shutdown: an event stream a test left open must not hang the teardown.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            server.force_exit = True
            raise


async def token_for(client: httpx.AsyncClient, username: str) -> str:
    response = await client.post(
        "/v1/auth/token", json={"username": username, "password": demo_password(SECRET, username)}
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def auth(client: httpx.AsyncClient) -> Callable[[str], Any]:
    """``await auth("admin")`` -> headers with a bearer token for that demo account."""
    cache: dict[str, dict[str, str]] = {}

    async def headers(username: str) -> dict[str, str]:
        if username not in cache:
            cache[username] = {"Authorization": f"Bearer {await token_for(client, username)}"}
        return cache[username]

    return headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``tourapi`` (a separate process) use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOURAPI_")}
    env.update(
        {
            "TOURAPI_DATABASE_URL": settings.database_url,
            "TOURAPI_SECRET_KEY": SECRET,
            "TOURAPI_REDIS_NAMESPACE": settings.redis_namespace,
            "TOURAPI_LOG_LEVEL": "WARNING",
        }
    )
    if settings.redis_url:
        env["TOURAPI_REDIS_URL"] = settings.redis_url
        env["TOURAPI_REDIS_CLUSTER"] = "true" if settings.redis_cluster else "false"
    return env


async def wait_until_ready(url: str, process: Any, log_path: Path) -> None:
    """Poll ``/readyz`` of a ``tourapi serve`` process for up to ~30 s; its log explains a failure."""
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(log_path.read_text())
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("tourapi serve did not become ready:\n" + log_path.read_text())


@pytest.fixture
async def served(settings: Settings, tmp_path: Path) -> AsyncIterator[str]:
    """``tourapi serve`` in its own process (granian), on this test's database copy. Yields the base URL."""
    import subprocess
    import sys

    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tourapi", "serve", "--port", str(port)],
        env=settings_env(settings),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(url, process, tmp_path / "serve.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
