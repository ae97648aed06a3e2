"""`tourapi serve --workers 2` on PostgreSQL + real Redis: the live view works whichever worker answers.

Each HTTP connection is served by one worker process; the test finds out which one from the kernel's
socket table (/proc), so it can hold connections to *both* workers and show that:

* an event published on one worker (the leader's aggregator, or an acknowledgement POSTed to a
  worker) reaches event-stream clients connected to the other worker, with the same ids;
* a stream resumed with Last-Event-ID on the other worker replays exactly what was missed;
* a capacity change made through one worker applies on the other within a second or two.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from conftest import (
    REDIS_CLUSTER,
    REDIS_URL,
    _admin_execute,
    _pg_url,
    _skipped,
    free_port,
    make_settings,
    settings_env,
    token_for,
    wait_until_ready,
)
from test_sessions import CENTRE, LION, away, ping, send, start

pytestmark = [pytest.mark.postgis, pytest.mark.redis_server]
WAIT_S = 5.0


@pytest.fixture(autouse=True)
def _needs_services() -> None:
    if "postgis" in _skipped:
        pytest.skip(_skipped["postgis"])
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc to tell which worker holds a connection")


@pytest.fixture
async def database(seeded_postgis: Any) -> AsyncIterator[str]:
    name = f"tourapi_w_{uuid.uuid4().hex[:10]}"
    await _admin_execute(f"CREATE DATABASE {name} TEMPLATE {seeded_postgis.template}")
    yield _pg_url(name)
    await _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def workers(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def worker_of(self, client_port: int) -> int | None:
        """The worker process holding the server side of the connection from ``client_port``."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not Path(table).exists():
                continue
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local_port = int(parts[1].rsplit(":", 1)[1], 16)
                remote_port = int(parts[2].rsplit(":", 1)[1], 16)
                if local_port == self.port and remote_port == client_port:
                    inodes.add(f"socket:[{parts[9]}]")
        for pid in self.workers():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
                except OSError:
                    continue
        return None


@pytest.fixture
async def server(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    if REDIS_CLUSTER:
        pytest.skip("runs against a single Redis")
    settings = make_settings(database, REDIS_URL, redis_namespace=f"t{uuid.uuid4().hex[:12]}")
    port = free_port()
    process, log = spawn(["--port", str(port), "--workers", "2"], settings_env(settings), tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(url, process, tmp_path / "serve.log")
        server = Server(url, port, process)
        for _ in range(100):
            if len(server.workers()) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(server.workers()) == 2, server.workers()
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def spawn(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], IO[str]]:
    """``tourapi serve`` in its own process group, logging to cwd/serve.log (the caller closes it)."""
    log = (cwd / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tourapi", "serve", *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log


def client_port(response: httpx.Response) -> int:
    sock = response.extensions["network_stream"].get_extra_info("socket")
    return int(sock.getsockname()[1])


async def pinned_clients(server: Server) -> dict[int, httpx.AsyncClient]:
    """One keep-alive client per worker: each holds one connection, known to be served by that worker."""
    pinned: dict[int, httpx.AsyncClient] = {}
    for _ in range(40):
        http = httpx.AsyncClient(base_url=server.url, timeout=10, limits=httpx.Limits(max_connections=1))
        worker = server.worker_of(client_port(await http.get("/readyz")))
        if worker is not None and worker not in pinned:
            pinned[worker] = http
        else:
            await http.aclose()
        if len(pinned) == 2:
            return pinned
    raise AssertionError(f"connections reached workers {list(pinned)} only")


@dataclass
class Stream:
    """An event-stream client, its worker, and the events it received."""

    worker: int
    events: list[tuple[str, str, Any]] = field(default_factory=list)  # (event, id, data)
    task: asyncio.Task[None] | None = None

    def ids_of(self, kind: str) -> list[str]:
        return [eid for event, eid, _ in self.events if event == kind]


async def open_stream(server: Server, token: str, last_event_id: str | None = None) -> Stream:
    opened: asyncio.Future[Stream] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=60)) as http,
            http.stream("GET", "/v1/live/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            stream = Stream(server.worker_of(client_port(response)) or 0)
            opened.set_result(stream)
            event, eid, data = "message", "", []
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("id:"):
                    eid = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    stream.events.append((event, eid, json.loads("\n".join(data))))
                    event, data = "message", []

    task = asyncio.create_task(read())
    stream = await asyncio.wait_for(opened, WAIT_S)
    stream.task = task
    return stream


async def streams_on_both_workers(
    server: Server, token: str, last_event_id: str | None = None
) -> list[Stream]:
    streams: list[Stream] = []
    for _ in range(40):
        streams.append(await open_stream(server, token, last_event_id))
        if len({s.worker for s in streams} - {0}) == 2:
            return streams
    await close(streams)
    raise AssertionError(f"streams reached workers {sorted({s.worker for s in streams})} only")


async def close(streams: list[Stream]) -> None:
    for stream in streams:
        if stream.task:
            stream.task.cancel()
    await asyncio.gather(*(s.task for s in streams if s.task), return_exceptions=True)


async def until(condition: Any, what: str) -> float:
    """Wait for ``condition()`` to be true; returns the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < WAIT_S:
        if condition():
            return time.monotonic() - began
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_events_and_capacity_changes_reach_every_worker(server: Server) -> None:
    pinned = await pinned_clients(server)
    first, second = sorted(pinned)
    anyone = pinned[first]
    operator = {"Authorization": f"Bearer {await token_for(anyone, 'operator')}"}
    admin = {"Authorization": f"Bearer {await token_for(anyone, 'admin')}"}
    streams = await streams_on_both_workers(server, operator["Authorization"].split()[1])
    try:
        await until(lambda: all(s.ids_of("snapshot") for s in streams), "a snapshot on every stream")

        # A visitor walks into the Lion Grove through a request to one worker; the leader's aggregator (on
        # one of the two workers) publishes it; every stream, on either worker, gets the same event.
        sid, headers = await start(pinned[first])
        await send(pinned[first], sid, headers, [ping(away(200), 60), ping((CENTRE.x, CENTRE.y), 10)])

        def occupancy_seen(stream: Stream) -> bool:
            return any(
                e == "occupancy" and any(r["poi_id"] == LION for r in d["pois"]) for e, _, d in stream.events
            )

        await until(lambda: all(occupancy_seen(s) for s in streams), "the occupancy event on every stream")
        assert len({tuple(s.ids_of("occupancy")) for s in streams}) == 1  # the same events, the same ids

        # A capacity change made on one worker applies on the other at once (it polls the catalogue).
        patched = await pinned[first].patch(f"/v1/pois/{LION}", json={"capacity": 1}, headers=admin)
        assert patched.status_code == 200, patched.text
        summaries: dict[int, dict[str, Any]] = {}

        async def capacity_on(worker: int) -> int:
            summary = (await pinned[worker].get("/v1/live/summary", headers=operator)).json()
            summaries[worker] = summary
            return next(p["capacity"] for p in summary["pois"] if p["poi_id"] == LION)

        began = time.monotonic()
        while await capacity_on(second) != 1:
            assert time.monotonic() - began < 2.5, "the other worker still has the old capacity"
            await asyncio.sleep(0.05)
        lion = next(p for p in summaries[second]["pois"] if p["poi_id"] == LION)
        assert (lion["occupancy"], lion["level"]) == (1, "full")

        # The leader raises the alert; it is acknowledged through the second worker, and the
        # acknowledgement (published by that worker) reaches the streams on the first worker too.
        await until(lambda: all(s.ids_of("alert") for s in streams), "the alert on every stream")
        alert = next(d for e, _, d in streams[0].events if e == "alert")
        assert (alert["poi_id"], alert["level"]) == (LION, "full")
        acked = await pinned[second].post(f"/v1/live/alerts/{alert['id']}/ack", headers=operator)
        assert acked.status_code == 200, acked.text
        await until(
            lambda: all(s.ids_of("alert_ack") for s in streams), "the acknowledgement on every stream"
        )
        assert any(s.worker == first for s in streams)
        assert len({tuple(eid for _, eid, _ in s.events[1:]) for s in streams}) == 1

        # A console that reconnects, whichever worker it lands on, resumes where it left off.
        # (From the first event after the snapshot: a position of "0-0" on a trimmed stream means "start over".)
        position = streams[0].events[1][1]
        missed = [(e, eid) for e, eid, _ in streams[0].events[2:]]
        resumed = await streams_on_both_workers(server, operator["Authorization"].split()[1], position)
        try:
            await until(lambda: all(len(s.events) >= len(missed) for s in resumed), "the replay")
            for stream in resumed:
                assert [(e, eid) for e, eid, _ in stream.events[: len(missed)]] == missed
        finally:
            await close(resumed)
    finally:
        await close(streams)
        for http in pinned.values():
            await http.aclose()
