"""Load and soak: hours of a holiday night compressed into minutes, on PostgreSQL + PostGIS and a real Redis.

    python -m bench.soak [--minutes 10] [--load 0.7] [--capacity PINGS_PER_S] [--output bench/results/soak.md]

Starts a private Redis and the API (granian, 1 worker) on the benchmark database (built by bench.run if
missing), measures the single-ping capacity with wrk unless --capacity is given, then for --minutes drives
``--load`` x that rate of single pings (wrk, paced per connection) plus a trickle of QR check-ins, with an
operator's SSE client connected the whole time. Visitors churn: each minute pings a window of sessions
moved on by half its size, and sessions expire after TOURAPI_SESSION_IDLE_S=120 s, so the sweeper and
key expiry work throughout.

Every minute it records: the achieved rates, errors (non-2xx answers, socket errors, timeouts), ping p99,
the worker's resident memory, Redis keys and memory against the active sessions. At the end it checks that
the live check-in counters in Redis equal tonight's check-ins stored in the database that were not counted
before the run (earlier runs' rows a repair job had not yet flagged are counted into this run's Redis),
that the occupancy in Redis equals the presence entries, and that the SSE client stayed connected.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import (
    DATABASE,
    ROOT,
    Proc,
    api_env,
    database_ready,
    db_url,
    free_port,
    gather_fixtures,
    ping_body,
    prepare_database,
    private_redis,
    rss_mb,
    wait_ready,
    write_requests,
    wrk,
)

SESSION_IDLE_S = 120
CONNECTIONS = 16
WINDOW = 1000  # sessions pinged in one minute; the next minute's window starts half of it later


def unexpected(raw: dict[str, Any], expected: tuple[str, ...]) -> int:
    return sum(n for status, n in raw["statuses"].items() if status not in expected)


async def sse_client(base: str, token: str, state: dict[str, Any], stop: asyncio.Event) -> None:
    """An operator's console: stays connected, counts events, reconnects with Last-Event-ID if dropped."""
    last_id = None
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {token}"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            async with (
                httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, read=40)) as http,
                http.stream("GET", "/v1/live/stream", headers=headers) as response,
            ):
                state["connects"] += 1
                async for line in response.aiter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("event:"):
                        state["events"] += 1
                        state["last_event_at"] = time.time()
                    elif line.startswith("id:"):
                        last_id = line.split(":", 1)[1].strip()
        except (httpx.HTTPError, OSError) as exc:
            state["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(1)


async def redis_numbers(redis_url: str, operator: str, base: str) -> dict[str, Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = int(await client.dbsize())
        memory = int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        summary = (await http.get("/v1/live/summary", headers={"Authorization": f"Bearer {operator}"})).json()
    return {
        "redis_keys": keys,
        "redis_used_memory": memory,
        "active_sessions": summary["active_sessions"]["total"],
        "occupancy_total": sum(p["occupancy"] for p in summary["pois"]),
        "checkins_live": {
            p["poi_id"]: p["checkins_tonight"] for p in summary["pois"] if p["checkins_tonight"]
        },
    }


async def tonight_checkins(counted_only: bool = False) -> dict[str, int]:
    """Tonight's stored check-ins per POI, of every session; with ``counted_only``, only the rows a repair
    job has already flagged as counted (in an earlier run's Redis: a fresh Redis never counts them again)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from tourapi.timeutil import night_of

    night = night_of(datetime.now(UTC))
    engine = create_async_engine(db_url(DATABASE))
    flagged = " AND counted" if counted_only else ""
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        f"SELECT poi_id, count(*) FROM checkins WHERE night = :night{flagged} GROUP BY poi_id"
                    ),
                    {"night": night},
                )
            ).all()
    finally:
        await engine.dispose()
    return {poi: int(n) for poi, n in rows}


def presence_matches_occupancy(redis_url: str, namespace: str) -> tuple[int, int]:
    """(sum of the shard occupancy hashes, presence entries): two views of "inside now" that must agree."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    occupancy = presence = 0
    for key in client.scan_iter(match=f"{namespace}:*:occ", count=1000):
        occupancy += sum(int(v) for v in client.hvals(key))
    for key in client.scan_iter(match=f"{namespace}:*:presence", count=1000):
        presence += int(client.zcard(key))
    client.close()
    return occupancy, presence


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tourapi-soak-"))
    redis_port, api_port = free_port(), free_port()
    redis_proc = private_redis(redis_port, tmp)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = api_env(redis_url)
    env["TOURAPI_SESSION_IDLE_S"] = str(SESSION_IDLE_S)
    namespace = env.get("TOURAPI_REDIS_NAMESPACE", "tourapi")
    procs = [redis_proc]
    report: dict[str, Any] = {"minutes": [], "load_before": os.getloadavg()}
    stop = asyncio.Event()
    try:
        if not await database_ready():
            print(f"preparing the database {DATABASE} ...", flush=True)
            await prepare_database(env)
        # The benchmark database keeps earlier runs' check-ins. Tonight's rows not yet flagged as counted
        # are counted into this run's fresh Redis by the repair job, the flagged ones never: so at the end
        # the live counters must equal tonight's rows minus those flagged now.
        counted_before = await tonight_checkins(counted_only=True)
        api = Proc(
            [sys.executable, "-m", "tourapi", "serve", "--port", str(api_port), "--workers", "1"],
            env,
            tmp / "api.log",
        )
        procs.append(api)
        base = f"http://127.0.0.1:{api_port}"
        await wait_ready(base, "/readyz", api)
        fx = await gather_fixtures(base, sessions=0)

        async def start_sessions(count: int) -> list[tuple[str, str]]:
            made: list[tuple[str, str]] = []
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:

                async def one() -> None:
                    response = await http.post("/v1/sessions", json={"install_id": f"soak-{uuid.uuid4()}"})
                    response.raise_for_status()
                    made.append((response.json()["session_id"], response.json()["token"]))

                for _ in range(0, count, 50):
                    await asyncio.gather(*(one() for _ in range(50)))
            return made

        pid = api.worker_pids()[0]
        json_h = {"Content-Type": "application/json"}

        def ping_lines(window: list[tuple[str, str]]) -> list[tuple[str, str, dict[str, str], str]]:
            return [
                (
                    "POST",
                    f"/v1/sessions/{sid}/pings",
                    {**json_h, "Authorization": f"Bearer {token}"},
                    ping_body(n, 1),
                )
                for n, (sid, token) in enumerate(window)
            ]

        window = await start_sessions(WINDOW)
        print(f"ready: {len(fx.checkpoint_tokens)} checkpoints; worker {pid}", flush=True)
        capacity = args.capacity
        if capacity is None:
            raw = wrk(base, write_requests(tmp / "capacity.tsv", ping_lines(window)), 10, 64)
            capacity = raw["requests"] / (raw["duration_us"] / 1e6)
            print(f"measured single-ping capacity: {capacity:.0f} pings/s", flush=True)
        target = args.load * capacity
        checkin_target = max(1.0, target * 0.05)
        report.update(capacity=capacity, target=target, checkin_target=checkin_target)
        sse_state: dict[str, Any] = {"connects": 0, "events": 0, "errors": [], "last_event_at": None}
        sse = asyncio.create_task(sse_client(base, fx.operator, sse_state, stop))
        ping_delay = CONNECTIONS * 1000 / target
        checkin_connections = 2
        checkin_delay = checkin_connections * 1000 / checkin_target
        fresh = window  # sessions that have not checked in yet
        # Three codes spread over the list (it is ordered by venue), so several venues' counters move.
        codes = fx.checkpoint_tokens[:: max(1, len(fx.checkpoint_tokens) // 3)][:3]
        started = time.time()
        for minute in range(args.minutes):
            if minute:
                # Half the visitors leave (their sessions go idle and expire), as many new ones arrive.
                fresh = await start_sessions(WINDOW // 2)
                window = window[WINDOW // 2 :] + fresh
            pings_file = write_requests(tmp / "pings.tsv", ping_lines(window))
            # Each new visitor scans up to three codes once (201); a repeat would be a 200.
            checkins_file = write_requests(
                tmp / "checkins.tsv",
                [
                    (
                        "POST",
                        "/v1/checkins",
                        {**json_h, "Authorization": f"Bearer {token}"},
                        json.dumps({"token": qr, "session_id": sid}),
                    )
                    for qr in codes
                    for sid, token in fresh
                ],
            )
            loop = asyncio.get_running_loop()
            ping_job = loop.run_in_executor(
                None, functools.partial(wrk, base, pings_file, 60, CONNECTIONS, delay_ms=ping_delay)
            )
            checkin_job = loop.run_in_executor(
                None,
                functools.partial(
                    wrk, base, checkins_file, 60, checkin_connections, sequential=True, delay_ms=checkin_delay
                ),
            )
            pings, checks = await ping_job, await checkin_job
            numbers = await redis_numbers(redis_url, fx.operator, base)
            ping_rate = pings["requests"] / (pings["duration_us"] / 1e6)
            row = {
                "minute": minute + 1,
                "pings_per_s": round(ping_rate, 1),
                "ping_p99_ms": pings["p99_us"] / 1000,
                "ping_errors": pings["socket_errors"] + unexpected(pings, ("200",)),
                "checkins_per_s": round(checks["requests"] / (checks["duration_us"] / 1e6), 2),
                "checkin_errors": checks["socket_errors"] + unexpected(checks, ("200", "201")),
                "checkin_statuses": checks["statuses"],
                "rss_mb": round(rss_mb(pid), 1),
                "sse_events": sse_state["events"],
                **{k: v for k, v in numbers.items() if k != "checkins_live"},
            }
            report["minutes"].append(row)
            print(json.dumps(row), flush=True)
            # Keep the offered load on target: pace by the measured rate.
            if ping_rate > 0:
                ping_delay = max(0.0, ping_delay * ping_rate / target)
        report["elapsed_s"] = time.time() - started
        await asyncio.sleep(2)  # the last check-ins' counters
        final = await redis_numbers(redis_url, fx.operator, base)
        stored = {
            poi: n - counted_before.get(poi, 0)
            for poi, n in (await tonight_checkins()).items()
            if n > counted_before.get(poi, 0)
        }
        occupancy, presence = presence_matches_occupancy(redis_url, namespace)
        stop.set()
        sse.cancel()
        report.update(
            checkins_db=stored,
            checkins_live=final["checkins_live"],
            checkins_agree=stored == final["checkins_live"],
            occupancy_sum=occupancy,
            presence_entries=presence,
            sse=sse_state,
            sse_connected_throughout=sse_state["connects"] == 1,
            final=final,
            load_after=os.getloadavg(),
        )
    finally:
        stop.set()
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def markdown(report: dict[str, Any]) -> str:
    rows = report["minutes"]
    lines = [
        "# Soak run",
        "",
        (
            f"`python -m bench.soak --minutes {len(rows)}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
            f"1 API worker (granian) on PostgreSQL + PostGIS and a private Redis, {len(rows)} minutes of single pings at "
            f"{report['target']:.0f}/s (70 % of the {report['capacity']:.0f}/s measured just before), QR check-ins paced "
            f"for {report['checkin_target']:.1f}/s on 2 connections (the table shows what they reached), one operator's SSE client connected throughout; sessions churn "
            f"(a new window of {WINDOW} sessions each minute, half overlapping; idle expiry {SESSION_IDLE_S} s)."
        ),
        (
            f"Load average {report['load_before'][0]:.1f} before, {report['load_after'][0]:.1f} after "
            "(2 cores shared with other work)."
        ),
        "",
        (
            "| minute | pings/s | ping p99 ms | ping errors | check-ins/s | check-in errors | worker RSS MB "
            "| Redis keys | Redis MB | active sessions | keys per active session | inside now | SSE events |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per = r["redis_keys"] / r["active_sessions"] if r["active_sessions"] else 0
        lines.append(
            f"| {r['minute']} | {r['pings_per_s']:.0f} | {r['ping_p99_ms']:.1f} | {r['ping_errors']} "
            f"| {r['checkins_per_s']:.1f} | {r['checkin_errors']} | {r['rss_mb']:.0f} | {r['redis_keys']} "
            f"| {r['redis_used_memory'] / 2**20:.1f} | {r['active_sessions']} | {per:.2f} | {r['occupancy_total']} "
            f"| {r['sse_events']} |"
        )
    total_errors = sum(r["ping_errors"] + r["checkin_errors"] for r in rows)
    sse = report["sse"]
    lines += [
        "",
        (
            f"- Errors over the whole run: {total_errors} "
            f"(pings {sum(r['ping_errors'] for r in rows)}, check-ins {sum(r['checkin_errors'] for r in rows)})."
        ),
        (
            f"- Resident memory of the worker: {rows[0]['rss_mb']:.0f} MB after minute 1, {rows[-1]['rss_mb']:.0f} MB "
            f"at the end (max {max(r['rss_mb'] for r in rows):.0f} MB)."
        ),
        (
            f"- Live check-in counters (Redis) against the database at the end: "
            f"{'equal' if report['checkins_agree'] else 'DIFFERENT'} "
            f"({sum(report['checkins_db'].values())} of tonight's stored check-ins not counted before the run, "
            f"{sum(report['checkins_live'].values())} counted, {len(report['checkins_db'])} venues)."
        ),
        (
            f"- Occupancy hashes against presence entries at the end: {report['occupancy_sum']} vs "
            f"{report['presence_entries']} ({'equal' if report['occupancy_sum'] == report['presence_entries'] else 'DIFFERENT'})."
        ),
        (
            f"- SSE client: {sse['connects']} connection(s), {sse['events']} events, "
            f"{len(sse['errors'])} errors{': ' + '; '.join(sse['errors'][:3]) if sse['errors'] else ''}."
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the measured ping capacity")
    parser.add_argument("--capacity", type=float, help="pings/s to take as capacity instead of measuring it")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak.md")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    text = markdown(result)
    print(text)
    print(json.dumps({k: v for k, v in result.items() if k != "minutes"}, default=str)[:3000])
    arguments.output.write_text(text)
    print(f"written to {arguments.output}")
