"""/ops: the console's files, their security headers, the config endpoint. Both backends."""

from __future__ import annotations

import re
from importlib import resources

import pytest

ASSETS = resources.files("tourapi") / "static" / "ops" / "assets"


def csp_of(response) -> dict[str, str]:
    return {
        part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else ""
        for part in (p.strip() for p in response.headers["content-security-policy"].split(";"))
        if part
    }


async def test_console_page_is_served_with_security_headers(client) -> None:
    response = await client.get("/ops")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "geolocation=()" in headers["permissions-policy"] and "camera=()" in headers["permissions-policy"]
    csp = csp_of(response)
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert (
        csp["frame-ancestors"] == "'none'"
        and csp["object-src"] == "'none'"
        and csp["connect-src"] == "'self'"
    )
    assert csp["img-src"] == "'self' data:"  # no tile server configured
    # Everything the page loads is local (no CDN) and no script is inline (the CSP would block it).
    html = response.text
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/ops/assets/") or url == "#", url
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert " style=" not in html and "<style" not in html and " on" + "click=" not in html


async def test_assets_load_with_types_and_revalidate(client) -> None:
    names = sorted(p.name for p in ASSETS.iterdir())
    assert {"app.js", "sse.js", "map.js", "i18n.js", "console.css", "favicon.svg"} <= set(names)
    for name in names:
        response = await client.get(f"/ops/assets/{name}")
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (ASSETS / name).read_bytes()
    js = await client.get("/ops/assets/app.js")
    assert js.headers["content-type"].startswith("text/javascript")
    again = await client.get("/ops/assets/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert (await client.get("/ops/assets/console.css")).headers["content-type"].startswith("text/css")


async def test_only_known_assets_are_served(client) -> None:
    for name in (
        "nope.js",
        "..%2Fapp.js",
        "%2E%2E%2Findex.html",
        "app.JS",
        "index.html",
        "..%2F..%2Fsettings.py",
    ):
        assert (await client.get(f"/ops/assets/{name}")).status_code == 404, name


async def test_config_is_public_and_tells_only_the_tile_url(client) -> None:
    response = await client.get("/ops/config.json")
    assert response.status_code == 200
    body = response.json()
    assert body["tile_url"] is None and body["aggregate_interval_s"] == 1.0
    assert set(body) == {"version", "tile_url", "aggregate_interval_s", "snapshot_interval_s", "timezone"}


TILES = "https://{s}.tiles.example.org/night/{z}/{x}/{y}.png"


@pytest.fixture
def tile_url() -> str | None:
    return None  # tests parametrize it


@pytest.fixture
def settings(settings, tile_url):
    return settings.model_copy(update={"tile_url": tile_url}) if tile_url else settings


@pytest.mark.parametrize("tile_url", [TILES])
async def test_tile_url_reaches_the_page_and_its_csp(client) -> None:
    body = (await client.get("/ops/config.json")).json()
    assert body["tile_url"] == TILES
    csp = csp_of(await client.get("/ops"))
    assert csp["img-src"] == "'self' data: https://*.tiles.example.org"
    assert csp["connect-src"] == "'self'"  # tiles are images; nothing else may be fetched from there


@pytest.mark.parametrize("tile_url", ["javascript:alert(1)//{z}/{x}/{y}"])
async def test_unusable_tile_url_is_ignored(client) -> None:
    assert (await client.get("/ops/config.json")).json()["tile_url"] is None
    assert csp_of(await client.get("/ops"))["img-src"] == "'self' data:"
