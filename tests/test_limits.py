"""Bounds on what one request may ask for, CORS and security headers. Both set-ups.

Work bounds: search radius, bbox size, page sizes, ping batch size, route and plan sizes, polygon
vertices; body bounds: the request body limit (TOURAPI_MAX_BODY_BYTES), media uploads included.
Each refusal is a 4xx problem+json, and names the field where there is one to name.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import lifespan
from test_routes import _new_route
from test_sessions import CENTRE, ping, start

from tourapi.app import create_app
from tourapi.domain.anchors.services import MAX_NEARBY_RADIUS_M
from tourapi.domain.common.params import MAX_BBOX_DEGREES, MAX_PAGE, MAX_RADIUS_M
from tourapi.domain.itineraries.services import MAX_BUDGET_MINUTES
from tourapi.domain.routes.schemas import MAX_STOPS
from tourapi.domain.sessions.schemas import MAX_BATCH
from tourapi.domain.sync.services import MAX_LIMIT
from tourapi.geo.geometry import MAX_VERTICES
from tourapi.runtime import Runtime
from tourapi.settings import Settings, SettingsError

GUANQIAN = (120.623252, 31.313505)
APP_ORIGIN, CONSOLE_ORIGIN = "https://app.example.cn", "https://console.example.cn"


def refused(response: httpx.Response, field: str | None = None, status: tuple[int, ...] = (400, 422)) -> None:
    assert response.status_code in status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert response.json().get("field") == field, response.json()


# ---- work bounds ----------------------------------------------------------------------------------------


async def test_search_radius_is_bounded(client) -> None:
    near = {"lon": GUANQIAN[0], "lat": GUANQIAN[1]}
    assert (await client.get("/v1/pois", params={**near, "radius": MAX_RADIUS_M})).status_code == 200
    for radius in (MAX_RADIUS_M + 1, 0, -5, "NaN", "Infinity"):
        refused(await client.get("/v1/pois", params={**near, "radius": radius}), "radius")
    refused(await client.get("/v1/anchors", params={**near, "radius": MAX_NEARBY_RADIUS_M + 1}), "radius")


async def test_bbox_size_is_bounded(client) -> None:
    lon, lat = GUANQIAN
    inside = f"{lon - 0.1},{lat - 0.1},{lon + 0.1},{lat + 0.1}"
    assert (await client.get("/v1/pois", params={"bbox": inside})).status_code == 200
    too_wide = f"{lon - 1},{lat - 0.1},{lon + MAX_BBOX_DEGREES},{lat + 0.1}"
    refused(await client.get("/v1/pois", params={"bbox": too_wide}), "bbox")
    refused(await client.get("/v1/pois", params={"bbox": "-180,-90,180,90"}), "bbox")


async def test_page_sizes_are_bounded(client) -> None:
    assert (await client.get("/v1/pois", params={"limit": MAX_PAGE})).status_code == 200
    refused(await client.get("/v1/pois", params={"limit": MAX_PAGE + 1}))
    refused(await client.get("/v1/pois", params={"offset": 10**9}))
    assert (await client.get("/v1/sync", params={"limit": MAX_LIMIT})).status_code == 200
    refused(await client.get("/v1/sync", params={"limit": MAX_LIMIT + 1}))


async def test_ping_batches_are_bounded(client) -> None:
    sid, headers = await start(client)
    url = f"/v1/sessions/{sid}/pings"
    one = ping((CENTRE.x, CENTRE.y), 30)
    assert (await client.post(url, json={"pings": [one] * MAX_BATCH}, headers=headers)).status_code == 200
    refused(await client.post(url, json={"pings": [one] * (MAX_BATCH + 1)}, headers=headers))
    refused(await client.post(url, json={"pings": []}, headers=headers))


def _circle(lon: float, lat: float, vertices: int, radius_deg: float = 0.0003) -> list[list[float]]:
    ring = [
        [
            lon + radius_deg * math.cos(2 * math.pi * k / vertices),
            lat + radius_deg * math.sin(2 * math.pi * k / vertices),
        ]
        for k in range(vertices)
    ]
    return [*ring, ring[0]]


async def test_polygon_vertex_count_is_bounded(client, auth) -> None:
    from test_pois import _new_poi

    lon, lat = 120.6295, 31.3170
    headers = await auth("admin")
    fine = _new_poi(
        id="test-round-hall", geofence={"type": "Polygon", "coordinates": [_circle(lon, lat, 64)]}
    )
    assert (await client.post("/v1/pois", json=fine, headers=headers)).status_code == 201
    huge = _new_poi(
        id="test-many-corners",
        geofence={"type": "Polygon", "coordinates": [_circle(lon, lat, MAX_VERTICES + 1)]},
    )
    refused(await client.post("/v1/pois", json=huge, headers=headers), "geofence")


async def test_route_and_plan_sizes_are_bounded(client, auth) -> None:
    operator = await auth("operator")
    body = _new_route()
    stops = [{"poi_id": "pingjiang-road", "dwell_minutes": 1}] * (MAX_STOPS + 1)
    refused(
        await client.post(
            "/v1/routes",
            json={**body, "stops": stops, "legs": [{"mode": "walk"}] * MAX_STOPS},
            headers=operator,
        )
    )
    plan = {
        "start": {"lon": GUANQIAN[0], "lat": GUANQIAN[1]},
        "start_time": "2026-07-18T19:40:00+08:00",
        "interests": {"garden": 1},
    }
    refused(
        await client.post("/v1/itineraries/plan", json={**plan, "budget_minutes": MAX_BUDGET_MINUTES + 1}),
        "budget_minutes",
    )
    refused(
        await client.post(
            "/v1/itineraries/plan",
            json={**plan, "budget_minutes": 60, "must_include": [f"poi-{n}" for n in range(11)]},
        )
    )


# ---- body limits ----------------------------------------------------------------------------------------


async def test_request_bodies_are_bounded(client, auth, settings: Settings) -> None:
    too_big = b"x" * (settings.max_body_bytes + 1)
    # Refused before anyone reads it: anonymous, with a session token, and as the operator uploading media.
    refused(
        await client.post("/v1/sessions", content=too_big, headers={"Content-Type": "application/json"}),
        status=(413,),
    )
    sid, headers = await start(client)
    refused(
        await client.post(
            f"/v1/sessions/{sid}/pings",
            content=too_big,
            headers={**headers, "Content-Type": "application/json"},
        ),
        status=(413,),
    )
    upload = {**await auth("operator"), "Content-Type": "image/png"}
    refused(await client.post("/v1/media", content=too_big, headers=upload), status=(413,))

    # A chunked body (no Content-Length to check up front) is cut off once it passes the limit.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    refused(await client.post("/v1/media", content=chunks(), headers=upload), status=(413,))


# ---- CORS and headers -----------------------------------------------------------------------------------


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(update={"cors_origins": [APP_ORIGIN, CONSOLE_ORIGIN]})
    application = create_app(configured, Runtime.create(configured))
    async with lifespan(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
            yield http


async def _preflight(http: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await http.options(
        "/v1/sessions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


async def test_cors_allows_only_the_configured_origins(cors_client) -> None:
    for origin in (APP_ORIGIN, CONSOLE_ORIGIN):
        allowed = await _preflight(cors_client, origin)
        assert allowed.status_code in (200, 204)
        assert allowed.headers["access-control-allow-origin"] == origin
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers  # bearer tokens, never cookies
        simple = await cors_client.get("/v1/pois", headers={"Origin": origin})
        assert simple.headers["access-control-allow-origin"] == origin
    for origin in (
        "https://evil.example",
        "null",
        "https://app.example.cn.evil.example",
        "http://app.example.cn",
    ):
        denied = await _preflight(cors_client, origin)
        assert denied.headers.get("access-control-allow-origin") in (None, ""), origin
        simple = await cors_client.get("/v1/pois", headers={"Origin": origin})
        assert "access-control-allow-origin" not in simple.headers, origin


async def test_compressed_answers_still_vary_by_encoding_with_cors(cors_client) -> None:
    """Litestar's CORS middleware replaces Vary with Origin; a gzip answer must still name Accept-Encoding,
    or a shared cache could give gzip to a client that cannot read it."""
    route = (await cors_client.get("/v1/routes")).json()["routes"][0]["id"]
    for path in ("/v1/pois", f"/v1/routes/{route}/bundle"):
        for _ in range(2):  # the bundle's second answer comes from memory
            response = await cors_client.get(path, headers={"Origin": APP_ORIGIN, "Accept-Encoding": "gzip"})
            assert response.status_code == 200 and response.headers["content-encoding"] == "gzip", path
            varies = {v.strip().lower() for v in response.headers["vary"].split(",")}
            assert {"origin", "accept-encoding"} <= varies, (path, response.headers["vary"])


async def test_without_configured_origins_there_is_no_cors(client) -> None:
    response = await client.get("/v1/pois", headers={"Origin": APP_ORIGIN})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in (await _preflight(client, APP_ORIGIN)).headers


@pytest.mark.parametrize(
    "origins", [["*"], ["https://app.example.cn/"], ["app.example.cn"], ["https://*.example.cn"]]
)
def test_cors_origins_must_be_exact(origins: list[str]) -> None:
    with pytest.raises(SettingsError, match="TOURAPI_CORS_ORIGINS"):
        Settings.from_env(cors_origins=origins)


async def test_api_and_media_responses_carry_security_headers(client, auth) -> None:
    api = await client.get("/v1/pois")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in api.headers["content-security-policy"]
    problem = await client.get("/v1/pois/no-such-poi")
    assert problem.status_code == 404 and problem.headers["x-content-type-options"] == "nosniff"
    # An uploaded SVG, opened straight from our origin, cannot run script.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    created = await client.post(
        "/v1/media", content=svg, headers={**await auth("operator"), "Content-Type": "image/svg+xml"}
    )
    assert created.status_code in (200, 201), created.text
    served = await client.get(created.json()["url"])
    assert served.status_code == 200
    csp = served.headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert served.headers["x-content-type-options"] == "nosniff"
    # The console keeps its own, stricter-for-its-needs policy.
    console = await client.get("/ops")
    assert "script-src 'self'" in console.headers["content-security-policy"]
