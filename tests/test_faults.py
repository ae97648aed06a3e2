"""Faults, with nothing lost. These tests start and stop their own Redis and PostgreSQL servers on spare
loopback ports; they never touch the machine's shared services.

* Redis down, then back (restarted empty): 503 problem+json, not 500; check-ins still recorded;
  recovery by itself; `live rebuild` restores tonight's counters exactly; /readyz tells.
* Slow Redis: requests fail within the configured timeout instead of hanging.
* Database down: 503, no partial writes; in-flight writes are committed or cleanly refused.
* A worker killed mid-request during a burst of check-ins: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    REDIS_URL,
    SECRET,
    _admin_execute,
    _pg_url,
    _skipped,
    free_port,
    lifespan,
    make_settings,
    settings_env,
    token_for,
)
from sqlalchemy import func, select
from test_sessions import CENTRE, LION, ping

from tourapi.app import create_app
from tourapi.db.models import Checkin
from tourapi.runtime import Runtime
from tourapi.timeutil import night_of

pytestmark = [pytest.mark.postgis, pytest.mark.redis_server]
NETS = "master-of-the-nets-garden"


@pytest.fixture(autouse=True)
def _needs_services() -> None:
    if "postgis" in _skipped:
        pytest.skip(_skipped["postgis"])
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")


class PrivateRedis:
    """A redis-server of our own on a spare port, stopped and started at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if (
                subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode
                == 0
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis() -> Any:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
async def database(seeded_postgis: Any) -> AsyncIterator[str]:
    name = f"tourapi_f_{uuid.uuid4().hex[:10]}"
    await _admin_execute(f"CREATE DATABASE {name} TEMPLATE {seeded_postgis.template}")
    yield _pg_url(name)
    await _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def running(settings: Any) -> tuple[Runtime, Any]:
    runtime = Runtime.create(settings)
    return runtime, create_app(settings, runtime)


async def checkpoint_token(client: httpx.AsyncClient, poi: str) -> str:
    headers = {"Authorization": f"Bearer {await token_for(client, 'admin')}"}
    listed = (await client.get(f"/v1/pois/{poi}/checkpoints", headers=headers)).json()
    items = listed if isinstance(listed, list) else listed.get("checkpoints", listed.get("items"))
    return items[0]["url"].rsplit("/", 1)[1]


async def new_session(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    started = await client.post("/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}"})
    assert started.status_code == 201, started.text
    body = started.json()
    return body["session_id"], {"Authorization": f"Bearer {body['token']}"}


def is_problem(response: httpx.Response, status: int, slug: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if slug:
        assert response.json()["type"] == f"urn:tourapi:problem:{slug}"


async def test_redis_down_then_back(database: str, private_redis: PrivateRedis) -> None:
    from tourapi.domain.checkins.counters import rebuild_night

    settings = make_settings(database, private_redis.url)
    runtime, app = await running(settings)
    async with (
        lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
        ) as client,
    ):
        token = await checkpoint_token(client, NETS)
        sid, headers = await new_session(client)
        entered = await client.post(
            f"/v1/sessions/{sid}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 5)]}, headers=headers
        )
        assert entered.json()["inside"] == [LION]
        first = await client.post("/v1/checkins", json={"token": token, "session_id": sid}, headers=headers)
        assert first.status_code == 201

        private_redis.stop()
        started = time.monotonic()
        down = await client.post(
            f"/v1/sessions/{sid}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 2)]}, headers=headers
        )
        is_problem(down, 503, "live-state-unavailable")
        assert down.headers["retry-after"]
        assert time.monotonic() - started < 3, "a dead Redis must fail fast"
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("down")
        is_problem(await client.post("/v1/sessions", json={"install_id": f"install-{uuid.uuid4()}"}), 503)
        # The catalogue and the geofence index do not need Redis.
        assert (await client.get("/v1/pois/lion-grove-garden")).status_code == 200
        assert (
            await client.get("/v1/geofences/containing", params={"lon": CENTRE.x, "lat": CENTRE.y})
        ).json()["poi_ids"] == [LION]
        # A check-in during the outage is recorded in the database.
        second_token = await checkpoint_token(client, LION)
        during = await client.post(
            "/v1/checkins", json={"token": second_token, "session_id": sid}, headers=headers
        )
        assert during.status_code == 201, during.text

        private_redis.start()  # back, and empty
        for _ in range(50):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await client.get("/readyz")).status_code == 200, "recovers by itself"
        gone = await client.post(
            f"/v1/sessions/{sid}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 1)]}, headers=headers
        )
        is_problem(gone, 404, "session-not-found")  # the app starts a new session
        await new_session(client)

        night = night_of(datetime.now(UTC))
        await rebuild_night(runtime, night)
        counters = await runtime.live.night_counters(night)
        assert counters[NETS]["checkins"] == 1 and counters[LION]["checkins"] == 1
        assert counters[NETS]["unique"] == 1 and counters[LION]["unique"] == 1
        async with runtime.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(Checkin)) == 2


async def test_slow_redis_fails_within_the_timeout(database: str, private_redis: PrivateRedis) -> None:
    settings = make_settings(database, private_redis.url)
    runtime, app = await running(settings)
    async with (
        lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
        ) as client,
    ):
        sid, headers = await new_session(client)
        blocker = await asyncio.create_subprocess_exec(
            "redis-cli",
            "-p",
            str(private_redis.port),
            "DEBUG",
            "SLEEP",
            "3",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(0.2)
        started = time.monotonic()
        slow = await client.post(
            f"/v1/sessions/{sid}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 2)]}, headers=headers
        )
        elapsed = time.monotonic() - started
        await blocker.wait()
        is_problem(slow, 503, "live-state-unavailable")
        assert elapsed < settings.redis_timeout_s * 4 + 0.5, f"took {elapsed:.2f} s"


# ---- a PostgreSQL of our own ---------------------------------------------------------------------------------


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tourapi-pg-"))
        shutil.chown(self.dir, "postgres")
        self.bin = Path("/usr/lib/postgresql/15/bin")

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def init(self) -> None:
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"
        )

    def start(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-w",
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"
        )

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.dir / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    if not Path("/usr/lib/postgresql/15/bin/initdb").exists() or os.geteuid() != 0:
        pytest.skip("needs PostgreSQL 15 binaries and root (to run them as the postgres user)")
    pg = PrivatePostgres()
    pg.init()
    pg.start()
    try:
        settings = make_settings(pg.url, REDIS_URL, redis_namespace=f"t{uuid.uuid4().hex[:12]}")
        env = settings_env(settings)
        for command in (["db", "upgrade"], ["fixtures", "load"]):
            done = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tourapi",
                *command,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await done.communicate()
            assert done.returncode == 0, out.decode()
        yield pg
    finally:
        pg.remove()


async def test_database_down_then_back(private_postgres: PrivatePostgres) -> None:
    settings = make_settings(private_postgres.url, REDIS_URL, redis_namespace=f"t{uuid.uuid4().hex[:12]}")
    runtime, app = await running(settings)
    async with (
        lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local", timeout=30
        ) as client,
    ):
        from tourapi.bootstrap import ensure_demo_accounts

        async with runtime.sessionmaker() as session:
            await ensure_demo_accounts(session, SECRET)
        admin = {"Authorization": f"Bearer {await token_for(client, 'admin')}"}
        token = await checkpoint_token(client, NETS)
        sessions = [await new_session(client) for _ in range(40)]

        async def check_in(sid: str, headers: dict[str, str]) -> int:
            response = await client.post(
                "/v1/checkins", json={"token": token, "session_id": sid}, headers=headers
            )
            assert response.status_code in (201, 503), response.text
            if response.status_code == 503:
                is_problem(response, 503, "database-unavailable")
            return response.status_code

        burst = [asyncio.create_task(check_in(sid, headers)) for sid, headers in sessions]
        await asyncio.sleep(0.05)
        await asyncio.to_thread(private_postgres.stop)
        statuses = await asyncio.gather(*burst)

        refused = await client.patch("/v1/pois/lion-grove-garden", json={"capacity": 7}, headers=admin)
        is_problem(refused, 503, "database-unavailable")
        is_problem(await client.get("/v1/pois/lion-grove-garden"), 503, "database-unavailable")
        assert (await client.get("/readyz")).status_code == 503
        # Live state and the in-memory index keep working without the database.
        sid, headers = sessions[0]
        moving = await client.post(
            f"/v1/sessions/{sid}/pings", json={"pings": [ping((CENTRE.x, CENTRE.y), 1)]}, headers=headers
        )
        assert moving.status_code == 200 and moving.json()["inside"] == [LION]

        await asyncio.to_thread(private_postgres.start)
        for _ in range(50):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        lion = (await client.get("/v1/pois/lion-grove-garden")).json()
        assert lion["properties"]["capacity"] != 7, "the refused write left nothing behind"
        async with runtime.sessionmaker() as session:
            stored = await session.scalar(select(func.count()).select_from(Checkin))
        assert stored == statuses.count(201), f"{statuses.count(201)} answered 201, {stored} stored"
        # The refused ones go through once the database is back.
        for (sid, headers), status in zip(sessions, statuses):
            if status == 503:
                retry = await client.post(
                    "/v1/checkins", json={"token": token, "session_id": sid}, headers=headers
                )
                assert retry.status_code == 201, retry.text
        async with runtime.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(Checkin)) == len(sessions)


async def test_worker_killed_mid_burst_loses_and_duplicates_nothing(database: str, tmp_path: Path) -> None:
    settings = make_settings(
        database, REDIS_URL, redis_namespace=f"t{uuid.uuid4().hex[:12]}", rate_limit_scale=100
    )
    env = {**settings_env(settings), "TOURAPI_RATE_LIMIT_SCALE": "100"}
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tourapi", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            tokens = [
                await checkpoint_token(client, poi) for poi in (NETS, LION, "humble-administrators-garden")
            ]
            sessions = [await new_session(client) for _ in range(60)]
            jobs = [
                (sid, headers, qr, f"key-{n}-{m}")
                for n, (sid, headers) in enumerate(sessions)
                for m, qr in enumerate(tokens)
            ]
            results: dict[str, int] = {}

            async def send(sid: str, headers: dict[str, str], qr: str, key: str) -> None:
                for _ in range(40):  # an app retries with the same Idempotency-Key until it gets an answer
                    try:
                        response = await client.post(
                            "/v1/checkins",
                            json={"token": qr, "session_id": sid},
                            headers={**headers, "Idempotency-Key": key},
                        )
                        if response.status_code in (200, 201):
                            results[key] = response.json()["id"]
                            return
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                raise AssertionError(f"check-in {key} never succeeded")

            semaphore = asyncio.Semaphore(16)

            async def limited(*job: Any) -> None:
                async with semaphore:
                    await send(*job)

            tasks = [asyncio.create_task(limited(*job)) for job in jobs]
            await asyncio.sleep(0.3)
            workers = [
                int(p)
                for p in subprocess.run(
                    ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
                ).stdout.split()
            ]
            assert workers, "granian workers not found"
            os.kill(workers[0], signal.SIGKILL)
            await asyncio.gather(*tasks)
        assert len(results) == len(jobs)
        assert len(set(results.values())) == len(jobs), "every check-in is its own record"
        runtime = Runtime.create(settings)
        try:
            async with runtime.sessionmaker() as session:
                stored = await session.scalar(select(func.count()).select_from(Checkin))
        finally:
            await runtime.stop()
        assert stored == len(jobs), f"{len(jobs)} check-ins made, {stored} stored"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
