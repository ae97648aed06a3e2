"""/metrics: who may scrape, bounded HTTP labels, business gauges from shared state, multiprocess mode.

The API tests run on both backends (SQLite + in-process Redis, PostGIS + real Redis).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
import redis.exceptions
from click.testing import CliRunner
from conftest import SECRET
from prometheus_client.parser import text_string_to_metric_families
from test_sessions import CENTRE, LION, away, ping, send, start

from tourapi.cli import main as cli
from tourapi.observability import metrics
from tourapi.observability.multiproc import ENV, prepare_multiprocess_dir

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(settings):
    # Sessions cannot start between 06:00 + session_grace_after_night_h and noon (Asia/Shanghai): the
    # night is over and the next has not begun (reported to the lead). These tests must pass at any hour.
    return settings.model_copy(update={"session_grace_after_night_h": 7})


@pytest.fixture
def scrape_token(client, runtime) -> str:
    """What `tourapi metrics-token` prints, minted with this app's signing key."""
    return metrics.mint_scrape_token(runtime, days=30)[0]


@pytest.fixture
async def scrape(client, scrape_token) -> AsyncIterator:
    async def get() -> Samples:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {scrape_token}"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return parse(response.text)

    yield get


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def test_metrics_are_for_operators_and_the_scrape_token(client, auth, scrape_token) -> None:
    scraper = {"Authorization": f"Bearer {scrape_token}"}
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer " + "0" * 64})).status_code == 401
    assert (await client.get("/metrics", headers=await auth("staff-nets"))).status_code == 403
    visitor = (await client.post("/v1/sessions", json={"install_id": "install-metrics-1"})).json()["token"]
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {visitor}"})).status_code == 403
    assert (await client.get("/metrics", headers=await auth("operator"))).status_code == 200
    ok = await client.get("/metrics", headers=scraper)
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    # The scrape token opens /metrics and nothing else, though it carries the operator role.
    for method, path in (
        ("GET", "/v1/live/summary"),
        ("GET", "/v1/auth/me"),
        ("POST", "/v1/live/alerts/1/ack"),
        ("GET", "/v1/live/stream"),
    ):
        refused = await client.request(method, path, headers=scraper)
        assert refused.status_code == 403, path
        assert refused.headers["content-type"].startswith("application/problem+json")


def test_metrics_token_command(tmp_path) -> None:
    env = {"TOURAPI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db", "TOURAPI_SECRET_KEY": SECRET}
    result = CliRunner().invoke(cli, ["metrics-token", "--days", "30"], env=env)
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert (claims["scope"], claims["role"], claims["typ"]) == ("metrics", "operator", "access")
    assert abs(claims["exp"] - time.time() - 30 * 86400) < 60
    assert "valid for GET /metrics only" in result.stderr


async def test_http_metrics_label_route_templates_not_raw_paths(client, scrape) -> None:
    before = await scrape()
    for poi in ("lion-grove-garden", "master-of-the-nets-garden", "no-such-venue"):
        await client.get(f"/v1/pois/{poi}")
    assert (await client.get("/not/a/route/12345")).status_code == 404
    after = await scrape()
    template = {"method": "GET", "path": "/v1/pois/{poi_id}", "app_name": "tourapi"}
    ok = value(after, "tourapi_requests_total", status_code="200", **template)
    missing = value(after, "tourapi_requests_total", status_code="404", **template)
    assert ok - value(before, "tourapi_requests_total", status_code="200", **template) == 2
    assert missing - value(before, "tourapi_requests_total", status_code="404", **template) == 1
    paths = {dict(labels).get("path") for (name, labels) in after if name.startswith("tourapi_request")}
    assert "/v1/pois/{poi_id}" in paths
    assert not any("lion-grove" in p or "no-such-venue" in p or "12345" in p for p in paths)
    assert "/metrics" not in paths  # the scrape itself is not counted


async def test_refused_tokens_get_request_ids_headers_and_are_counted(client, scrape) -> None:
    """JWT auth refuses before any handler runs; the edge middleware sits outside it."""
    before = await scrape()
    refused = await client.get("/v1/live/summary", headers={"X-Request-ID": "refused-by-auth-01"})
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["x-request-id"] == "refused-by-auth-01"
    assert refused.headers["x-content-type-options"] == "nosniff"
    after = await scrape()
    labels = {"method": "GET", "path": "/v1/live/summary", "app_name": "tourapi", "status_code": "401"}
    assert (
        value(after, "tourapi_requests_total", **labels) - value(before, "tourapi_requests_total", **labels)
        == 1
    )


async def test_business_gauges_follow_the_live_state(client, runtime, auth, scrape) -> None:
    before = await scrape()
    admin = await auth("admin")
    assert (await client.patch(f"/v1/pois/{LION}", json={"capacity": 4}, headers=admin)).status_code == 200
    await runtime.jobs.elect()
    inside = [await start(client) for _ in range(4)]
    for sid, headers in inside:
        await send(client, sid, headers, [ping(away(200), 60), ping((CENTRE.x, CENTRE.y), 30)])
    elsewhere = await start(client)
    result = await send(
        client, *elsewhere, [ping(away(300), 10), ping(away(300), -3600)]
    )  # one from the future
    assert result["accepted"] == 1 and [r["reason"] for r in result["rejected"]] == ["in_future"]
    checkpoint = (await client.get(f"/v1/pois/{LION}/checkpoints", headers=admin)).json()[0]
    sid, headers = inside[0]
    checked = await client.post(
        "/v1/checkins",
        headers=headers,
        json={"session_id": sid, "token": checkpoint["url"], "lon": CENTRE.x, "lat": CENTRE.y, "accuracy": 8},
    )
    assert checked.status_code == 201, checked.text
    operator = await auth("operator")
    alerts = await until(lambda: client.get("/v1/live/alerts", headers=operator))  # the leader's aggregator
    assert [(a["poi_id"], a["level"]) for a in alerts] == [(LION, "full")]

    after = await scrape()
    assert value(after, "tourapi_active_sessions") == 5
    assert value(after, "tourapi_venue_occupancy", poi_id=LION) == 4
    assert value(after, "tourapi_venue_capacity", poi_id=LION) == 4
    assert value(after, "tourapi_venue_crowd_level", poi_id=LION) == 3  # 4/4 is full
    assert value(after, "tourapi_entries_tonight") == 4
    assert value(after, "tourapi_checkins_tonight") == 1
    assert named(after, "tourapi_alerts_open") == {
        frozenset({("level", "busy")}): 0,
        frozenset({("level", "crowded")}): 0,
        frozenset({("level", "full")}): 1,
    }
    # Four entries and one check-in went through the transition streams.
    assert value(after, "tourapi_transitions_total") == 5
    assert value(after, "tourapi_live_leader_present") == 1
    assert value(after, "tourapi_live_metrics_up", source="redis") == 1
    assert value(after, "tourapi_live_metrics_up", source="database") == 1
    pings = "tourapi_pings_processed_total"
    assert value(after, pings, result="accepted") - value(before, pings, result="accepted") == 4 * 2 + 1
    assert value(after, pings, result="rejected") - value(before, pings, result="rejected") == 1

    # Acknowledged alerts are no longer open; the gauges need no worker-local state to say so.
    await client.post(f"/v1/live/alerts/{alerts[0]['id']}/ack", headers=operator)
    assert value(await scrape(), "tourapi_alerts_open", level="full") == 0


async def until(request, timeout_s: float = 5.0) -> list:
    """The first non-empty JSON list the request returns (polled; background jobs run every second)."""
    for _ in range(int(timeout_s / 0.05)):
        body = (await request()).json()
        if body:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("nothing appeared")


async def test_scrape_answers_when_redis_is_down(client, scrape, monkeypatch) -> None:
    async def down(runtime):
        raise redis.exceptions.ConnectionError("connection refused")

    monkeypatch.setattr(metrics.live_services, "summary", down)
    samples = await scrape()
    assert value(samples, "tourapi_live_metrics_up", source="redis") == 0
    assert value(samples, "tourapi_live_metrics_up", source="database") == 1
    assert not named(samples, "tourapi_active_sessions")
    assert named(samples, "tourapi_requests_total")  # the HTTP metrics are still there


def test_multiprocess_mode_adds_up_every_workers_counters(tmp_path: Path, monkeypatch) -> None:
    """Two worker processes count pings into PROMETHEUS_MULTIPROC_DIR; one scrape sees the sum."""
    stale = tmp_path / "counter_999.db"
    stale.write_bytes(b"left over from an earlier run")
    monkeypatch.setenv(ENV, str(tmp_path))
    assert prepare_multiprocess_dir() == tmp_path and not stale.exists()
    code = (
        "import sys; from tourapi.observability.metrics import PINGS_PROCESSED; "
        "PINGS_PROCESSED.labels('accepted').inc(int(sys.argv[1]))"
    )
    for n in (3, 4):
        subprocess.run(
            [sys.executable, "-c", code, str(n)],
            check=True,
            env={**os.environ, ENV: str(tmp_path)},
            timeout=60,
        )
    samples = parse(metrics._process_metrics().decode())
    assert value(samples, "tourapi_pings_processed_total", result="accepted") == 7


def test_serve_prepares_a_fresh_multiprocess_dir_when_none_is_set(monkeypatch) -> None:
    monkeypatch.setenv(ENV, "")  # unset for the server; monkeypatch removes what it sets after the test
    path = prepare_multiprocess_dir()
    assert path.is_dir() and not any(path.iterdir()) and os.environ[ENV] == str(path)
    path.rmdir()
