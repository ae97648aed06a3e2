"""Structured logs: JSON lines with a request id, and no tokens, passwords or positions in them.

Runs a production-style app (log_format=json, INFO) on both backends and reads what it logs while
a visitor and an operator use it, including an unexpected error whose message carries SQL parameters.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy.exc
from conftest import SECRET, lifespan
from test_sessions import CENTRE, ping

from tourapi.app import create_app
from tourapi.bootstrap import demo_password
from tourapi.runtime import Runtime

LON, LAT = f"{CENTRE.x:.6f}", f"{CENTRE.y:.6f}"


@pytest.fixture
def settings(settings):
    # JSON logs at INFO, as in production. (Also: sessions cannot start between 06:00 + the grace and noon
    # Asia/Shanghai, reported to the lead; this test must pass at any hour.)
    return settings.model_copy(
        update={"log_format": "json", "log_level": "INFO", "session_grace_after_night_h": 7}
    )


@pytest.fixture
async def logged(settings) -> AsyncIterator[tuple[httpx.AsyncClient, io.StringIO, Runtime]]:
    runtime = Runtime.create(settings)
    app = create_app(settings, runtime)  # configures logging: one JSON handler on the root logger
    (handler,) = logging.getLogger().handlers
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        async with lifespan(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
                yield client, buffer, runtime
    finally:
        handler.setStream(previous)


async def test_logs_are_json_with_request_ids_and_no_secrets(logged, monkeypatch) -> None:
    client, buffer, runtime = logged
    password = demo_password(SECRET, "operator")
    login = await client.post("/v1/auth/token", json={"username": "operator", "password": password})
    operator_token = login.json()["access_token"]
    started = (
        await client.post("/v1/sessions", json={"install_id": "install-logcheck-1", "locale": "en"})
    ).json()
    sid, session_token = started["session_id"], started["token"]
    visitor = {"Authorization": f"Bearer {session_token}"}
    fix = ping((CENTRE.x, CENTRE.y), 5)
    assert (
        await client.post(f"/v1/sessions/{sid}/pings", json={"pings": [fix]}, headers=visitor)
    ).status_code == 200
    near = await client.get(
        "/v1/pois",
        params={"lon": LON, "lat": LAT, "radius": 500},
        headers={"X-Request-ID": "req-from-the-app-01"},
    )
    assert near.status_code == 200 and near.headers["x-request-id"] == "req-from-the-app-01"
    await client.get("/v1/live/summary", headers={"Authorization": f"Bearer {operator_token}"})

    # An unexpected error whose message carries bound SQL parameters (a position and a token).
    async def broken(*args, **kwargs):
        raise sqlalchemy.exc.StatementError(
            "statement failed",
            "UPDATE visits SET lon = :lon, lat = :lat WHERE token = :token",
            {"lon": float(LON), "lat": float(LAT), "token": session_token},
            None,
        )

    monkeypatch.setattr(runtime.live, "apply_pings", broken)
    failed = await client.post(f"/v1/sessions/{sid}/pings", json={"pings": [fix]}, headers=visitor)
    assert failed.status_code == 500
    error_id = failed.headers["x-request-id"]

    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [r for r in records if r.get("logger") == "tourapi.access"]
    assert len(access) == 6
    assert all(r.get("request_id") for r in access)
    assert {r["route"] for r in access} >= {
        "/v1/auth/token",
        "/v1/sessions",
        "/v1/sessions/{session_id}/pings",
        "/v1/pois",
        "/v1/live/summary",
    }
    assert any(r["request_id"] == "req-from-the-app-01" for r in access)
    errors = [r for r in records if r.get("level") == "error"]
    assert len(errors) == 1 and errors[0]["request_id"] == error_id
    assert "StatementError" in errors[0]["exception"] and "[parameters: <redacted>]" in errors[0]["exception"]

    text = buffer.getvalue()
    for secret in (password, operator_token, session_token, "install-logcheck-1", LON, LAT, LON[:8], LAT[:7]):
        assert secret not in text, f"{secret!r} leaked into the logs"
    assert "?" not in "".join(r["route"] for r in access)  # no query strings
