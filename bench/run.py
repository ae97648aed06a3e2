"""The whole HTTP benchmark in one command, on PostgreSQL + PostGIS and a real Redis.

    python -m bench.run [--duration 10] [--connections 64] [--no-write]

It creates a fresh database (fixtures + a synthetic city of 10,000 POIs and 50,000 anchors), starts
a private Redis, the bare baselines and the API with granian (1 worker, then 2), drives load with
wrk from a separate process, and writes one table to docs/performance.md. Every figure is also given
as a ratio to the baselines measured in the same run ("hello": a bare Litestar JSON endpoint;
"redis floor": a bare endpoint doing one Redis round trip), because absolute numbers on a shared
machine are noisy.

Needs: wrk and redis-server on PATH, PostgreSQL with PostGIS reachable at TOURAPI_BENCH_POSTGRES_URL
(default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "TOURAPI_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-" + "s" * 40
DATABASE = "tourapi_bench"
LION = (120.625045, 31.3231)  # inside the Lion Grove Garden
PINGJIANG = (120.6300, 31.3150)
CITY = (121.47, 31.23)
SUZHOU_BBOX = "120.4,31.1,120.9,31.5"
PERF_DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench:http:start -->", "<!-- bench:http:end -->"


def private_redis(port: int, tmp: Path) -> Proc:
    """A throw-away Redis on a loopback port: nothing saved, nothing shared with the machine's own."""
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Proc(command, dict(os.environ), tmp / "redis.log")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def db_url(name: str) -> str:
    return urlparse(ADMIN_URL)._replace(path=f"/{name}").geturl()


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    unit: float = 1.0  # items per request (10 for a batch of pings)
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Run:
    duration: int
    connections: int
    results: dict[str, Result] = field(default_factory=dict)
    # The baseline a target is judged against, measured again right before the target's scenario.
    paired: dict[str, Result] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# Targets given as a ratio to a baseline: scenario -> (baseline, minimum ratio). The machine's speed drifts
# during a run (shared VM), so each is judged against its baseline measured just before it.
TARGETS: dict[str, tuple[str, float]] = {
    "single ping": ("redis floor", 0.8),
    "check-in, first": ("redis floor", 0.5),
    "route bundle 200": ("hello", 0.5),
    "route bundle 304": ("hello", 0.8),
    "POIs nearby 500 m, fixtures": ("hello", 0.5),
    "POIs nearby 500 m, synthetic city": ("hello", 0.3),
}
BASELINE_REQUEST = {"hello": ("GET", "/hello", {}, ""), "redis floor": ("GET", "/redis", {}, "")}


# ---- processes ---------------------------------------------------------------------------------------------


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.log = log.open("w")
        self.p = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
        self.log.close()

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-g", str(self.p.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split() if int(pid) != self.p.pid]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_ready(url: str, path: str, proc: Proc) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(600):
            if proc.p.poll() is not None:
                raise RuntimeError(f"{url} exited: see {proc.log.name}")
            try:
                if (await http.get(url + path)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def api_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOURAPI_")}
    env.update(
        {
            "TOURAPI_DATABASE_URL": db_url(DATABASE),
            "TOURAPI_REDIS_URL": redis_url,
            "TOURAPI_SECRET_KEY": SECRET,
            "TOURAPI_LOG_LEVEL": "WARNING",
            "TOURAPI_LOG_FORMAT": "json",
            "TOURAPI_RATE_LIMIT_SCALE": "10000",  # load comes from one address and a few installs
            "TOURAPI_DB_POOL_SIZE": "20",
            "BENCH_REDIS_URL": redis_url,
        }
    )
    return env


def tourapi_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tourapi", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode:
        raise RuntimeError(f"tourapi {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


# ---- set-up ------------------------------------------------------------------------------------------------


async def prepare_database(env: dict[str, str]) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        await conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    await admin.dispose()
    tourapi_cli("db", "upgrade", env=env)
    tourapi_cli("fixtures", "load", env=env)
    for user, role in (("bench-admin", "admin"), ("bench-operator", "operator")):
        tourapi_cli("users", "add", user, "--role", role, env=env, stdin="bench-password-123\n")
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from bench.seed import seed_city

    engine = create_async_engine(db_url(DATABASE))
    async with async_sessionmaker(engine)() as session:
        await seed_city(session)
    await engine.dispose()


@dataclass
class Fixtures:
    admin: str
    operator: str
    sessions: list[tuple[str, str]]
    checkpoint_tokens: list[str]
    route_id: str
    bundle_etag: str


async def gather_fixtures(base: str, sessions: int) -> Fixtures:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def login(user: str) -> str:
            response = await http.post(
                "/v1/auth/token", json={"username": user, "password": "bench-password-123"}
            )
            return response.json()["access_token"]

        admin, operator = await login("bench-admin"), await login("bench-operator")
        made: list[tuple[str, str]] = []

        async def start(n: int) -> None:
            body = (await http.post("/v1/sessions", json={"install_id": f"bench-install-{n:06d}"})).json()
            made.append((body["session_id"], body["token"]))

        for chunk in range(0, sessions, 200):
            await asyncio.gather(*(start(n) for n in range(chunk, min(chunk + 200, sessions))))
        # The Suzhou fixtures only (the synthetic city's ids would fill the page first).
        pois = (await http.get("/v1/pois", params={"bbox": SUZHOU_BBOX, "limit": 500})).json()["features"]
        tokens = []  # checkpoints that need no position (a proximity rule would refuse a bare scan)
        for poi in pois:
            listed = (
                await http.get(
                    f"/v1/pois/{poi['id']}/checkpoints", headers={"Authorization": f"Bearer {admin}"}
                )
            ).json()
            items = listed if isinstance(listed, list) else listed.get("checkpoints", listed.get("items", []))
            tokens += [
                item["url"].rsplit("/", 1)[1]
                for item in items
                if item.get("active", True) and not item.get("require_proximity")
            ]
        routes = (await http.get("/v1/routes")).json()
        route_items = routes if isinstance(routes, list) else routes.get("routes", routes.get("features", []))
        route_id = route_items[0]["id"]
        bundle = await http.get(f"/v1/routes/{route_id}/bundle")
        return Fixtures(admin, operator, made, tokens, route_id, bundle.headers["etag"])


def write_requests(path: Path, lines: list[tuple[str, str, dict[str, str], str]]) -> Path:
    with path.open("w") as out:
        for method, target, headers, body in lines:
            header_text = "|".join(f"{k}: {v}" for k, v in headers.items())
            out.write(f"{method}\t{target}\t{header_text}\t{body}\n")
    return path


def ping_body(n: int, batch: int) -> str:
    pings = []
    for k in range(batch):
        # Visitors stand in the Lion Grove with a few metres of jitter; timestamps are filled in by wrk.
        lon = LION[0] + ((n * 7 + k * 3) % 11 - 5) * 0.00002
        lat = LION[1] + ((n * 5 + k * 7) % 11 - 5) * 0.00002
        pings.append(f'{{"lon":{lon:.6f},"lat":{lat:.6f},"accuracy":8,"timestamp":"{{TS-{batch - k}}}"}}')
    return '{"pings":[' + ",".join(pings) + "]}"


# ---- load --------------------------------------------------------------------------------------------------


def wrk(
    url: str,
    requests_file: Path | None,
    duration: int,
    connections: int,
    sequential: bool = False,
    delay_ms: float | None = None,
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_SEQUENTIAL": "1" if sequential else "0"}
    if delay_ms is not None:
        env["BENCH_DELAY_MS"] = str(int(delay_ms))
    if requests_file is not None:
        env["BENCH_REQUESTS"] = str(requests_file)
    script = str(ROOT / "bench" / "wrk" / "replay.lua")
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        script,
        url,
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True).stdout
    match = re.search(r"RESULT (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk gave no result:\n{out}")
    return json.loads(match.group(1))


def measure(
    run: Run,
    name: str,
    url: str,
    lines: list[tuple[str, str, dict[str, str], str]],
    tmp: Path,
    unit: float = 1.0,
    warmup: bool = True,
    expect: tuple[int, ...] = (200,),
    sequential: bool = False,
    connections: int | None = None,
    record: bool = True,
) -> Result:
    """Drive ``lines`` with wrk; any status outside ``expect`` (and any socket error or timeout) is an error.
    ``record=False`` measures without adding a row to the table (a paired baseline)."""
    path = write_requests(tmp / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.tsv", lines)
    connections = connections or run.connections
    if warmup:
        wrk(url, path, 2, connections)
    raw = wrk(url, path, run.duration, connections, sequential)
    statuses = {k: int(v) for k, v in sorted(raw["statuses"].items())}
    unexpected = sum(n for status, n in statuses.items() if int(status) not in expect)
    good = raw["requests"] - unexpected
    # Rates count expected answers only: an error page must not look like throughput.
    result = Result(
        name,
        good / (raw["duration_us"] / 1e6),
        raw["p50_us"] / 1000,
        raw["p90_us"] / 1000,
        raw["p99_us"] / 1000,
        raw["socket_errors"] + unexpected,
        unit,
        statuses,
    )
    if record:
        run.results[name] = result
    shown = ", ".join(f"{k}: {v}" for k, v in statuses.items())
    print(
        f"  {name:<42} {result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms"
        f"  errors {result.errors} (socket {raw['socket_errors']}, timeouts {raw['timeouts']}; {shown})",
        flush=True,
    )
    return result


# ---- in-process measurements -------------------------------------------------------------------------------


def geofence_index_numbers() -> list[dict[str, Any]]:
    import random

    import numpy as np

    from bench.seed import fence_around, grid_point
    from tourapi.geo.index import FenceSource, GeofenceIndex

    rows = []
    for count in (1_000, 10_000, 100_000):
        rng = random.Random(count)
        per_row = int(count**0.5) + 1
        sources = [
            FenceSource(f"f{n}", fence_around(*grid_point(n, per_row), rng), None, 100, 300)
            for n in range(count)
        ]
        started = time.perf_counter()
        index = GeofenceIndex.build(sources, 1, 15.0)
        build_s = time.perf_counter() - started
        lo = np.array([grid_point(0, per_row), grid_point(count - 1, per_row)])
        lons = rng_uniform(rng, lo[:, 0].min(), lo[:, 0].max(), 20_000)
        lats = rng_uniform(rng, lo[:, 1].min(), lo[:, 1].max(), 20_000)
        started = time.perf_counter()
        hits = 0
        for x, y in zip(lons[:20_000], lats[:20_000]):
            hits += len(index.containing(x, y))
        single = 20_000 / (time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(0, 20_000, 100):
            index.classify(lons[start : start + 100], lats[start : start + 100])
        batched = 20_000 / (time.perf_counter() - started)
        rows.append(
            {"polygons": count, "build_s": build_s, "lookups_per_s": single, "batched_per_s": batched}
        )
        print(
            f"  index {count:>7} polygons: build {build_s:5.2f} s, {single:>9.0f} single lookups/s, "
            f"{batched:>10.0f} points/s in ping batches of 100",
            flush=True,
        )
    return rows


def rng_uniform(rng: Any, low: float, high: float, n: int) -> list[float]:
    return [rng.uniform(low, high) for _ in range(n)]


async def redis_bytes_per_session(redis_url: str, sessions: int = 10_000) -> float:
    """Memory a live session costs in Redis: started, one ping inside a venue, measured with INFO."""
    import redis.asyncio as aioredis

    from tourapi.live.store import ClassifiedPing, LiveStore
    from tourapi.settings import Settings
    from tourapi.timeutil import night_of

    settings = Settings(
        database_url=db_url(DATABASE), redis_url=redis_url, secret_key=SECRET, redis_namespace="memprobe"
    )
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = LiveStore(client, settings, SECRET)
    before = int((await client.info("memory"))["used_memory"])
    now = time.time()
    from datetime import UTC, datetime

    night = night_of(datetime.now(UTC))

    async def one(n: int) -> None:
        ihash = store.install_hash(f"mem-{n}")
        sid, _ = await store.start_session(ihash, None, "en", now, now + 6 * 3600)
        ping = ClassifiedPing(
            ts=now - 1, night=night, good=True, core=("lion-grove-garden",), near=("lion-grove-garden",)
        )
        await store.apply_pings(sid, ihash, None, [ping], {"lion-grove-garden": 600}, now)

    # At most 50 at a time: the client's connection pool is bounded (MaxConnectionsError otherwise).
    for chunk in range(0, sessions, 50):
        await asyncio.gather(*(one(n) for n in range(chunk, min(chunk + 50, sessions))))
    after = int((await client.info("memory"))["used_memory"])
    keys = [key async for key in client.scan_iter(match="memprobe:*", count=5000)]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])
    await client.aclose()
    return (after - before) / sessions


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def connections_per_worker(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections to ``port`` held by each worker process (from /proc)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                established.add(cols[9])
    counts = {}
    for pid in pids:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        counts[pid] = len(inodes & established)
    return counts


async def full_collections(base: str, operator_token: str) -> int:
    """The API worker's count of full (generation 2) garbage collections so far, from /metrics."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        text = (await http.get("/metrics", headers={"Authorization": f"Bearer {operator_token}"})).text
    found = re.search(r'^python_gc_collections_total\{generation="2"\} ([0-9.e+]+)$', text, re.MULTILINE)
    if found is None:
        raise RuntimeError("/metrics has no python_gc_collections_total for generation 2")
    return int(float(found.group(1)))


async def multi_worker_checks(
    base: str, operator: str, api: Proc, sessions: int = 300, max_listeners: int = 24
) -> dict[str, Any]:
    """Two workers, one Redis: the live count stays exact while pings are served by both workers, and SSE
    reaches clients whose streams are held by either worker."""
    headers = {"Authorization": f"Bearer {operator}"}
    port = int(urlparse(base).port or 80)
    pids = api.worker_pids()
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=40)) as http:
        before = (await http.get("/v1/live/summary", headers=headers)).json()
        lion_before = next(p["occupancy"] for p in before["pois"] if p["poi_id"] == "lion-grove-garden")
        await http.aclose()  # its connection would count as a stream below
        streams: list[list[str]] = []

        async def listen(n: int) -> None:
            # A client per stream, each with its own connection: the kernel hands them to either worker.
            async with (
                httpx.AsyncClient(base_url=base, timeout=60) as own,
                own.stream("GET", "/v1/live/stream", headers=headers) as response,
            ):
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        streams[n].append(line.split(":", 1)[1].strip())
                        if "occupancy" in streams[n]:
                            return

        # Open streams one by one until each worker holds at least two (granian's workers accept from
        # one socket, and a burst of connections often lands on one of them).
        listeners = []
        held = dict.fromkeys(pids, 0)
        while len(listeners) < max_listeners and min(held.values()) < 2:
            streams.append([])
            listeners.append(asyncio.create_task(listen(len(listeners))))
            await asyncio.sleep(0.3)
            held = connections_per_worker(pids, port)
        streams_per_worker = held
        cpu_before = {pid: cpu_seconds(pid) for pid in pids}

        async def enter(n: int) -> None:
            # A fresh client per visitor: new connections, so the pings land on both workers.
            async with httpx.AsyncClient(base_url=base, timeout=30) as own:
                started = (await own.post("/v1/sessions", json={"install_id": f"mw-{uuid.uuid4()}"})).json()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
                body = {"pings": [{"lon": LION[0], "lat": LION[1], "accuracy": 5, "timestamp": stamp}]}
                response = await own.post(
                    f"/v1/sessions/{started['session_id']}/pings",
                    json=body,
                    headers={"Authorization": f"Bearer {started['token']}"},
                )
                response.raise_for_status()

        for chunk in range(0, sessions, 30):
            await asyncio.gather(*(enter(n) for n in range(chunk, min(chunk + 30, sessions))))
        cpu_used = {pid: round(cpu_seconds(pid) - cpu_before[pid], 2) for pid in pids}
        try:
            await asyncio.wait_for(asyncio.gather(*listeners), 15)
            sse_ok = all("occupancy" in s for s in streams)
        except TimeoutError:
            sse_ok = False
            for task in listeners:
                task.cancel()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        after = (await http.get("/v1/live/summary", headers=headers)).json()
        lion_after = next(p["occupancy"] for p in after["pois"] if p["poi_id"] == "lion-grove-garden")
    return {
        "sessions": sessions,
        "occupancy_delta": lion_after - lion_before,
        "sse_clients_served": sse_ok,
        "sse_clients": len(listeners),
        "sse_served": sum("occupancy" in s for s in streams),
        "streams_per_worker": list(streams_per_worker.values()),
        "cpu_s_per_worker": list(cpu_used.values()),
    }


# ---- the run -----------------------------------------------------------------------------------------------


async def database_ready() -> bool:
    """True if the benchmark database exists with the synthetic city in it (for --reuse-db)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db_url(DATABASE))
    try:
        async with engine.connect() as conn:
            return bool(
                (await conn.execute(text("SELECT count(*) FROM pois WHERE id LIKE 'city-%'"))).scalar()
            )
    except Exception:  # noqa: BLE001  any failure means: build it
        return False
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> Run:
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(
                f"{tool} is not installed (apt-get install -y {tool if tool == 'wrk' else 'redis-server'})"
            )
    run = Run(duration=args.duration, connections=args.connections)
    only = re.compile(args.only, re.IGNORECASE) if args.only else None

    def want(name: str) -> bool:
        return only is None or bool(only.search(name))

    tmp = Path(tempfile.mkdtemp(prefix="tourapi-bench-"))
    redis_port, base_port, api_port = free_port(), free_port(), free_port()
    redis_proc = private_redis(redis_port, tmp)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = api_env(redis_url)
    procs = [redis_proc]
    run.extra["load_before"] = os.getloadavg()
    try:
        if args.reuse_db and await database_ready():
            print(f"reusing the database {DATABASE}", flush=True)
        else:
            print(f"preparing the database {DATABASE} (fixtures + synthetic city) ...", flush=True)
            await prepare_database(env)
        baseline = Proc(
            [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--factory",
                "--workers",
                "1",
                "--port",
                str(base_port),
                "--no-ws",
                "--log-level",
                "warning",
                "bench.baseline:app_factory",
            ],
            env,
            tmp / "baseline.log",
        )
        api = Proc(
            [sys.executable, "-m", "tourapi", "serve", "--port", str(api_port), "--workers", "1"],
            env,
            tmp / "api.log",
        )
        procs += [baseline, api]
        base_url, api_url = f"http://127.0.0.1:{base_port}", f"http://127.0.0.1:{api_port}"
        await wait_ready(base_url, "/hello", baseline)
        await wait_ready(api_url, "/readyz", api)
        fx = await gather_fixtures(api_url, sessions=3000)
        print(
            f"ready: {len(fx.sessions)} sessions, {len(fx.checkpoint_tokens)} checkpoints, route {fx.route_id}"
        )
        if args.pause:
            print(
                f"API at {api_url} (worker pids {api.worker_pids()}), baselines at {base_url}; "
                f"sessions in {tmp}/sessions.json; Ctrl-C to stop",
                flush=True,
            )
            (tmp / "sessions.json").write_text(json.dumps(fx.__dict__))
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()
            return run

        def target(name: str, *args: Any, **kwargs: Any) -> Result:
            baseline, minimum = TARGETS[name]
            before = measure(
                run, f"{baseline}, just before", base_url, [BASELINE_REQUEST[baseline]], tmp, record=False
            )
            run.paired[name] = before
            result = measure(run, name, *args, **kwargs)
            print(
                f"    = {result.rps / before.rps:.2f} × {baseline} just before (target ≥ {minimum})",
                flush=True,
            )
            return result

        json_h = {"Content-Type": "application/json"}
        measure(run, "hello (baseline)", base_url, [BASELINE_REQUEST["hello"]], tmp)
        measure(run, "redis floor (baseline)", base_url, [BASELINE_REQUEST["redis floor"]], tmp)
        if want("single ping"):
            script_lines = [("GET", f"/ping-script/{sid}", {}, "") for sid, _ in fx.sessions[:1000]]
            measure(run, "ping script floor (baseline)", base_url, script_lines, tmp)
        ping_lines = [
            (
                "POST",
                f"/v1/sessions/{sid}/pings",
                {**json_h, "Authorization": f"Bearer {token}"},
                ping_body(n, 1),
            )
            for n, (sid, token) in enumerate(fx.sessions[:1000])
        ]
        if want("single ping"):
            full_gcs = await full_collections(api_url, fx.operator)
            target("single ping", api_url, ping_lines, tmp)
            run.extra["full_gcs"] = await full_collections(api_url, fx.operator) - full_gcs
            print(
                f"  full garbage collections in the API worker meanwhile: {run.extra['full_gcs']}", flush=True
            )
        if want("batch of 10 pings"):
            batch_lines = [
                (
                    "POST",
                    f"/v1/sessions/{sid}/pings",
                    {**json_h, "Authorization": f"Bearer {token}"},
                    ping_body(n, 10),
                )
                for n, (sid, token) in enumerate(fx.sessions[:1000])
            ]
            measure(run, "batch of 10 pings", api_url, batch_lines, tmp, unit=10)
        if want("check-in"):
            # Each (session, checkpoint) pair once, sessions interleaved so consecutive requests hit
            # different rows: the first run must see only new check-ins (201), the repeat run replays
            # exactly the ones the first run wrote and must get 200 with the same record.
            checkins = [
                (
                    "POST",
                    "/v1/checkins",
                    {**json_h, "Authorization": f"Bearer {token}"},
                    json.dumps({"token": qr, "session_id": sid}),
                )
                for qr in fx.checkpoint_tokens
                for sid, token in fx.sessions
            ]
            first = target(
                "check-in, first", api_url, checkins, tmp, warmup=False, expect=(201,), sequential=True
            )
            written = first.statuses.get("201", 0)
            # A few of the first run's requests were still in flight when wrk stopped; if the server
            # dropped them they are new here (201). The statuses column shows how many.
            measure(
                run,
                "check-in, repeat",
                api_url,
                checkins[: max(written, 1)],
                tmp,
                warmup=False,
                expect=(200, 201),
            )
        bundle = f"/v1/routes/{fx.route_id}/bundle"
        if want("bundle"):
            target("route bundle 200", api_url, [("GET", bundle, {"Accept-Encoding": "gzip"}, "")], tmp)
            target(
                "route bundle 304",
                api_url,
                [("GET", bundle, {"Accept-Encoding": "gzip", "If-None-Match": fx.bundle_etag}, "")],
                tmp,
                expect=(304,),
            )
        near = "/v1/pois?lon={}&lat={}&radius=500&limit=100"
        if want("POIs nearby 500 m, fixtures"):
            target(
                "POIs nearby 500 m, fixtures",
                api_url,
                [("GET", near.format(*PINGJIANG), {"Accept-Encoding": "gzip"}, "")],
                tmp,
            )
        if want("POIs nearby 500 m, synthetic city"):
            target(
                "POIs nearby 500 m, synthetic city",
                api_url,
                [
                    (
                        "GET",
                        near.format(CITY[0] + 0.001 * k, CITY[1] + 0.001 * k),
                        {"Accept-Encoding": "gzip"},
                        "",
                    )
                    for k in range(-10, 11)
                ],
                tmp,
            )
        if want("anchors nearby 200 m, synthetic city"):
            measure(
                run,
                "anchors nearby 200 m, synthetic city",
                api_url,
                [
                    (
                        "GET",
                        f"/v1/anchors?lon={CITY[0] + 0.001 * k}&lat={CITY[1] + 0.001 * k}&radius=200&limit=100",
                        {"Accept-Encoding": "gzip"},
                        "",
                    )
                    for k in range(-10, 11)
                ],
                tmp,
            )
        if want("live summary (8 connections)"):
            # A handful of operators' consoles, not a crowd: 8 connections. With the synthetic city the
            # answer lists 10,031 venues (1.4 MB of JSON, gzipped).
            measure(
                run,
                "live summary (8 connections)",
                api_url,
                [
                    (
                        "GET",
                        "/v1/live/summary",
                        {"Authorization": f"Bearer {fx.operator}", "Accept-Encoding": "gzip"},
                        "",
                    )
                ],
                tmp,
                connections=min(8, run.connections),
            )
        run.extra["api_rss_mb"] = max(rss_mb(pid) for pid in api.worker_pids())
        print(f"  API worker resident memory: {run.extra['api_rss_mb']:.0f} MB", flush=True)
        api.stop()
        procs.remove(api)

        if want("geofence index"):
            print("geofence index in process ...", flush=True)
            run.extra["index"] = geofence_index_numbers()
        if want("redis memory"):
            print("Redis memory per active session ...", flush=True)
            run.extra["redis_bytes_per_session"] = await redis_bytes_per_session(redis_url)
            print(f"  {run.extra['redis_bytes_per_session']:.0f} bytes per session", flush=True)

        if want("2 workers"):
            print("2 workers, one Redis ...", flush=True)
            api2 = Proc(
                [sys.executable, "-m", "tourapi", "serve", "--port", str(api_port), "--workers", "2"],
                env,
                tmp / "api2.log",
            )
            procs.append(api2)
            await wait_ready(api_url, "/readyz", api2)
            await asyncio.sleep(3)  # leader election
            measure(run, "single ping, 2 workers", api_url, ping_lines, tmp)
            run.extra["multi_worker"] = await multi_worker_checks(api_url, fx.operator, api2)
            print(f"  {run.extra['multi_worker']}", flush=True)
    finally:
        run.extra["load_after"] = os.getloadavg()
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return run


# ---- report ------------------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in ("litestar", "granian", "redis", "sqlalchemy", "shapely", "asyncpg")
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()[2]
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}; "
        f"{wrk_version.split(' [')[0]}; Redis {redis_version.removeprefix('v=')}; {pg}"
    )


def report(run: Run) -> str:
    r = run.results
    hello, floor = r["hello (baseline)"].rps, r["redis floor (baseline)"].rps
    single = r["single ping"]
    targets: dict[str, tuple[str, bool]] = {}
    for name, (baseline, minimum) in TARGETS.items():  # a full run measures each with its paired baseline
        against = run.paired[name].rps
        ratio = r[name].rps / against
        targets[name] = (
            f"≥ {minimum} × {baseline}: {ratio:.2f} × its {against:,.0f} req/s just before",
            ratio >= minimum,
        )
    batch = r["batch of 10 pings"].rps * 10
    targets["batch of 10 pings"] = ("≥ 4 × single-ping pings/s", batch >= 4 * single.rps)
    lines = [
        START,
        (
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `python -m bench.run` "
            f"({run.duration} s per scenario after a 2 s warm-up, {run.connections} connections, wrk with 1 thread; "
            "API and baselines on granian with 1 worker unless stated; PostgreSQL + PostGIS and a private Redis "
            "on this machine)."
        ),
        "",
        (
            f"Machine: {machine()}. Load average (1 min) {run.extra['load_before'][0]:.1f} at the start and "
            f"{run.extra['load_after'][0]:.1f} at the end: the 2 cores were shared with other work."
        ),
        "",
        (
            "The × columns divide by the two baselines at the top of the table. A target is judged against its "
            "baseline measured again just before the scenario (the target column gives that ratio), because the "
            "machine's speed drifts during a run."
        ),
        "",
        "| scenario | req/s | items/s | × hello | × redis floor | p50 ms | p99 ms | errors | statuses | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, res in r.items():
        target, ok = targets.get(name, ("", None))
        mark = "" if ok is None else (" ✅" if ok else " ❌")
        lines.append(
            f"| {name} | {res.rps:,.0f} | {res.rps * res.unit:,.0f} | {res.rps / hello:.2f} | {res.rps / floor:.2f} "
            f"| {res.p50_ms:.2f} | {res.p99_ms:.2f} | {res.errors} "
            f"| {', '.join(f'{k}: {v:,}' for k, v in res.statuses.items())} | {target}{mark} |"
        )
    p99_ok = single.p99_ms < 25
    lines += [""]
    if "ping script floor (baseline)" in r:
        script = r["ping script floor (baseline)"].rps
        lines.append(
            f"- Single ping against the ping script floor (the same Redis script on the same sessions from a bare "
            f"endpoint, `bench/baseline.py`): {single.rps / script:.2f} × (not a target; it shows what the API adds "
            "around the Redis work)."
        )
    lines += [
        (
            f"- Ping p99 at {run.connections} connections: {single.p99_ms:.1f} ms (target < 25 ms) "
            f"{'✅' if p99_ok else '❌'}. Full garbage collections in the API worker during the single-ping scenario "
            f"(`python_gc_collections_total` in /metrics, warm-up included): {run.extra['full_gcs']}."
        ),
        (
            f"- Redis memory per active session (started, one ping inside a venue; INFO used_memory over 10,000 "
            f"sessions): {run.extra['redis_bytes_per_session']:.0f} bytes (target ≤ 2,048) "
            f"{'✅' if run.extra['redis_bytes_per_session'] <= 2048 else '❌'}."
        ),
        (
            f"- API worker resident memory after the run (fixtures + 10,000 synthetic POIs in the geofence index): "
            f"{run.extra['api_rss_mb']:.0f} MB."
        ),
        "",
        (
            "Geofence index, in process (synthetic polygons 20-35 m across on a 90 m grid; random points over the "
            "grid; single lookups call `GeofenceIndex.containing`, batches call `classify` with 100 points as a "
            "ping batch does):"
        ),
        "",
        "| polygons | build (rebuild) s | single lookups/s | points/s in batches of 100 | target |",
        "|---:|---:|---:|---:|---|",
    ]
    for row in run.extra["index"]:
        target = ""
        if row["polygons"] == 10_000:
            target = "≥ 100,000/s " + (
                "✅" if max(row["lookups_per_s"], row["batched_per_s"]) >= 100_000 else "❌"
            )
        lines.append(
            f"| {row['polygons']:,} | {row['build_s']:.2f} | {row['lookups_per_s']:,.0f} "
            f"| {row['batched_per_s']:,.0f} | {target} |"
        )
    mw = run.extra["multi_worker"]
    lines += [
        "",
        (
            f"Two workers against one Redis: {mw['sessions']} visitors entered the Lion Grove through requests spread "
            f"over both workers; the live count rose by {mw['occupancy_delta']} "
            f"({'exact' if mw['occupancy_delta'] == mw['sessions'] else 'NOT exact'}); worker CPU seconds spent "
            f"meanwhile: {' and '.join(str(c) for c in mw['cpu_s_per_worker'])}. "
            f"{mw['sse_served']} of {mw['sse_clients']} SSE clients, their streams held "
            f"{' and '.join(str(n) for n in mw['streams_per_worker'])} by the two workers, received the resulting "
            "occupancy event."
        ),
        END,
    ]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    text = PERF_DOC.read_text() if PERF_DOC.exists() else "# Performance\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n## HTTP benchmark\n\n" + section + "\n"
    PERF_DOC.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="keep the benchmark database if it is already seeded (faster repeat runs)",
    )
    parser.add_argument(
        "--only",
        help="regular expression: run only the scenarios whose name matches "
        "(baselines always run; implies --no-write)",
    )
    parser.add_argument(
        "--pause",
        action="store_true",
        help="start everything, print the URLs and wait (to profile the API by hand)",
    )
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    if arguments.only or arguments.pause:
        sys.exit(0)
    table = report(result)
    print(table)
    if not arguments.no_write:
        write_doc(table)
        print(f"written to {PERF_DOC}")
