"""Latency of POST /v1/itineraries/plan, in process (the whole app: Litestar, database, Redis, solver).

Usage::

    python -m bench.planner [--requests N] [--backend embedded|postgis|both] [--markdown OUT.md]

The app runs on a fresh database seeded with the Suzhou fixtures (31 POIs, 6 published routes with
their shows and boats). The ``dense`` scenarios add 60 synthetic evening venues (seeded, so the same
every run) around the old town, so that far more than 60 nodes are open and reachable and the
60-node cap applies. ``dense + crowd history`` also writes four past Saturdays of five-minute
occupancy snapshots for every venue (seeded; 30-110 % of capacity, so many venues are forecast
crowded or full for part of the evening and their windows are cut by the crowd forecast). Requests
are sent one after another (no concurrency) after a warm-up; every answer must be a 200. Solver time
comes from the ``Server-Timing`` header. CPU ms is this process's CPU time (every thread, so the
solver's worker thread too) during the request: on a shared machine the wall time includes waiting
for a core, the CPU time hardly does.

``postgis`` needs PostgreSQL with PostGIS and Redis (``TOURAPI_BENCH_POSTGRES_URL``, default
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres, and ``TOURAPI_BENCH_REDIS_URL``, default
redis://127.0.0.1:6379/14); a temporary database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
from sqlalchemy import select

from tourapi.app import create_app
from tourapi.bootstrap import create_embedded_schema, seed_rows
from tourapi.db.models import OccupancySnapshot, Poi
from tourapi.domain.pois.schemas import GeoJsonGeometry, PoiWrite
from tourapi.domain.pois.services import PoiService
from tourapi.fixtures import load_fixtures
from tourapi.runtime import Runtime
from tourapi.settings import DEFAULT_FIXTURES, Settings
from tourapi.timeutil import TZ

SECRET = "bench-secret-" + "x" * 40
PG_URL = os.environ.get("TOURAPI_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TOURAPI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
GUANQIAN = {"lon": 120.623252, "lat": 31.313505}
SATURDAY = "2026-07-18"
SYNTHETIC = 60
CATEGORIES = [
    "garden",
    "museum",
    "performance_venue",
    "food_street",
    "historic_street",
    "viewpoint",
    "temple",
]

FIXTURES, DENSE, CROWDS = "fixtures", "dense", "dense + crowd history"
SETUPS = (FIXTURES, DENSE, CROWDS)
DENSE_NIGHT = {"start": GUANQIAN, "start_time": f"{SATURDAY}T18:00:00+08:00", "budget_minutes": 240}

SCENARIOS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "fixtures: gardens, 2 h",
        FIXTURES,
        {
            "start": GUANQIAN,
            "start_time": f"{SATURDAY}T19:40:00+08:00",
            "budget_minutes": 120,
            "interests": {"garden": 1},
        },
    ),
    ("fixtures: every interest, 4 h", FIXTURES, DENSE_NIGHT),
    ("dense: every interest, 4 h", DENSE, DENSE_NIGHT),
    (
        "dense: every interest, 4 h, end place",
        DENSE,
        {
            **DENSE_NIGHT,
            "end": {"lon": 120.6185, "lat": 31.3190},
            "must_include": ["master-of-the-nets-garden"],
        },
    ),
    ("crowds: every interest, 4 h", CROWDS, DENSE_NIGHT),
    (
        "crowds: every interest, 4 h, end place",
        CROWDS,
        {
            **DENSE_NIGHT,
            "end": {"lon": 120.6185, "lat": 31.3190},
            "must_include": ["master-of-the-nets-garden"],
        },
    ),
]


@dataclass
class Result:
    backend: str
    scenario: str
    nodes: int
    dropped: int
    steered: int
    stops: int
    times_ms: list[float]
    cpu_ms: list[float]  # CPU time of this process (every thread) per request: less sensitive to load
    solver_ms: list[float]
    time_caps: int


async def add_synthetic_venues(runtime: Runtime, count: int) -> None:
    """Evening venues on a jittered grid over the old town (seeded: identical every run)."""
    rng = np.random.default_rng(20260718)
    async with runtime.sessionmaker() as session:
        service = PoiService(runtime, session)
        for i in range(count):
            lon = float(120.595 + rng.uniform(0, 0.045))
            lat = float(31.292 + rng.uniform(0, 0.036))
            d = 0.0004
            fence = [
                [lon - d, lat - d],
                [lon + d, lat - d],
                [lon + d, lat + d],
                [lon - d, lat + d],
                [lon - d, lat - d],
            ]
            opens = int(rng.integers(16, 20))
            await service.upsert(
                f"synthetic-{i:02d}",
                PoiWrite(
                    category=CATEGORIES[i % len(CATEGORIES)],  # type: ignore[arg-type]
                    name={"zh-Hans": f"合成场馆 {i}", "en": f"Synthetic venue {i}"},
                    location=GeoJsonGeometry("Point", [lon, lat]),
                    geofence=GeoJsonGeometry("Polygon", [fence]),
                    capacity=int(rng.integers(100, 2000)),
                    opening_hours=f"Mo-Su {opens:02d}:00-{int(rng.integers(21, 24)):02d}:30",
                    interest=round(float(rng.uniform(0.3, 0.95)), 2),
                    visit_minutes=int(rng.choice([20, 30, 45, 60, 90])),
                ),
            )


async def add_crowd_history(runtime: Runtime) -> None:
    """Five-minute snapshots 16:00-24:00 on the four Saturdays before the benchmark night, every venue."""
    rng = np.random.default_rng(20260711)
    night = datetime.fromisoformat(f"{SATURDAY}T16:00:00").replace(tzinfo=TZ)
    async with runtime.sessionmaker() as session:
        capacities = dict((await session.execute(select(Poi.id, Poi.capacity).order_by(Poi.id))).all())
        for weeks in range(1, 5):
            rows = []
            for poi, capacity in capacities.items():
                level = rng.uniform(0.3, 1.1)
                for k in range(8 * 12):
                    share = min(1.1, max(0.0, level + rng.normal(0, 0.05)))
                    occupancy = int(share * capacity)
                    rows.append(
                        OccupancySnapshot(
                            poi_id=poi,
                            bucket=(night - timedelta(weeks=weeks) + timedelta(minutes=5 * k)).astimezone(
                                UTC
                            ),
                            occupancy=occupancy,
                            entries_tonight=occupancy,
                            checkins_tonight=0,
                            unique_tonight=occupancy,
                            capacity=capacity,
                        )
                    )
            session.add_all(rows)
            await session.commit()


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def settings_for(database_url: str, redis_url: str | None) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=SECRET,
        fixtures_path=DEFAULT_FIXTURES,
        log_format="console",
        log_level="WARNING",
        redis_namespace=f"bench{uuid.uuid4().hex[:8]}",
        rate_limit_scale=10_000,  # measure the planner, not the per-IP limit on plans
    )


async def seed(settings: Settings, setup: str) -> None:
    runtime = Runtime.create(settings)
    try:
        if settings.embedded_database:
            await create_embedded_schema(runtime.engine)
        async with runtime.sessionmaker() as session:
            await seed_rows(session)
        await runtime.reload_keys()
        await load_fixtures(runtime, settings.fixtures_path)
        if setup != FIXTURES:
            await add_synthetic_venues(runtime, SYNTHETIC)
        if setup == CROWDS:
            await add_crowd_history(runtime)
    finally:
        await runtime.stop()


async def measure(backend: str, settings: Settings, setup: str, n: int) -> list[Result]:
    await seed(settings, setup)
    app = create_app(settings)
    results = []
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, needs, body in SCENARIOS:
                if needs != setup:
                    continue
                for _ in range(3):  # warm-up: imports, caches, connection pool
                    (await client.post("/v1/itineraries/plan", json=body)).raise_for_status()
                times, cpu, solver, caps = [], [], [], 0
                last: dict[str, Any] = {}
                for _ in range(n):
                    t0, c0 = time.perf_counter(), time.process_time()
                    response = await client.post("/v1/itineraries/plan", json=body)
                    times.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{name}: {response.status_code} {response.text}")
                    solver.append(float(response.headers["server-timing"].split("dur=")[1]))
                    last = response.json()
                    caps += last["solver"]["stopped_by"] == "time"
                results.append(
                    Result(
                        backend,
                        name,
                        last["candidates_considered"],
                        last["candidates"]["dropped_by_cap"],
                        len(last["steered_away"]),
                        sum(1 for s in last["stops"] if s["kind"] in ("visit", "show", "boat")),
                        times,
                        cpu,
                        solver,
                        caps,
                    )
                )
                print(
                    f"{backend:9s} {name:40s} p50 {pct(times, 50):6.1f} ms  p95 {pct(times, 95):6.1f} ms",
                    file=sys.stderr,
                )
    return results


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def run_embedded(n: int) -> list[Result]:
    out = []
    for setup in SETUPS:
        with tempfile.TemporaryDirectory() as tmp:
            out += await measure(
                "embedded", settings_for(f"sqlite+aiosqlite:///{tmp}/bench.db", None), setup, n
            )
    return out


async def run_postgis(n: int) -> list[Result]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from tourapi.db.migrate import upgrade

    async def admin(statement: str, database: str | None = None) -> None:
        url = PG_URL if database is None else urlparse(PG_URL)._replace(path=f"/{database}").geturl()
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    out = []
    for setup in SETUPS:
        name = f"tourapi_bench_{uuid.uuid4().hex[:8]}"
        await admin(f"CREATE DATABASE {name}")
        try:
            await admin("CREATE EXTENSION IF NOT EXISTS postgis", name)
            settings = settings_for(urlparse(PG_URL)._replace(path=f"/{name}").geturl(), REDIS_URL)
            await asyncio.to_thread(upgrade, settings, "heads")
            out += await measure("postgis", settings, setup, n)
        finally:
            await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return out


def render(results: list[Result], n: int, load: tuple[float, float], command: str) -> str:
    head = (
        "| backend | scenario | nodes (dropped by the cap) | venues steered away | stops | p50 ms | p95 ms "
        "| max ms | CPU p50 ms | CPU p95 ms | solver p50 ms | solver p95 ms | time cap fired |"
    )
    lines = [
        head,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.scenario} | {r.nodes} ({r.dropped}) | {r.steered} | {r.stops} "
            f"| {pct(r.times_ms, 50):.0f} "
            f"| {pct(r.times_ms, 95):.0f} | {max(r.times_ms):.0f} | {pct(r.cpu_ms, 50):.0f} "
            f"| {pct(r.cpu_ms, 95):.0f} | {pct(r.solver_ms, 50):.0f} "
            f"| {pct(r.solver_ms, 95):.0f} | {r.time_caps}/{len(r.times_ms)} |"
        )
    machine = (
        f"{n} sequential requests per scenario after 3 warm-up requests; in process (httpx ASGI transport, "
        f"no network). Machine: {cpu_model()}, {os.cpu_count()} cores, load average {load[0]:.2f} at start / "
        f"{load[1]:.2f} at end; Python {platform.python_version()}, pyvrp {version('pyvrp')}, "
        f"litestar {version('litestar')}."
    )
    lines += ["", machine, "", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.planner", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100, help="timed requests per scenario (default 100)")
    ap.add_argument("--backend", choices=["embedded", "postgis", "both"], default="embedded")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    load_start = os.getloadavg()[0]
    results: list[Result] = []
    if args.backend in ("embedded", "both"):
        results += asyncio.run(run_embedded(args.requests))
    if args.backend in ("postgis", "both"):
        results += asyncio.run(run_postgis(args.requests))
    command = "python -m bench.planner " + " ".join(argv if argv is not None else sys.argv[1:])
    table = render(results, args.requests, (load_start, os.getloadavg()[0]), command.strip())
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
