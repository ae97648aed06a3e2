"""Offline bundles (/v1/routes/{id}/bundle) and the content-addressed media store (/media/{sha256})."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from datetime import datetime

import httpx
from conftest import lifespan, settings_env

from tourapi.app import create_app
from tourapi.domain.routes import bundle as bundle_module
from tourapi.runtime import Runtime
from tourapi.settings import DEFAULT_FIXTURES
from tourapi.timeutil import TZ

ROUTES = {r["id"]: r for r in json.loads((DEFAULT_FIXTURES / "routes.json").read_text())["routes"]}
ROUTE = "pingjiang-kunqu-pingtan-saturday"
URL = f"/v1/routes/{ROUTE}/bundle"
COVER = DEFAULT_FIXTURES / "media" / "cover-pingjiang-lanterns.png"


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def test_manifest_content_and_version(client) -> None:
    response = await client.get(URL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "public, no-cache"
    body = response.json()
    content = {k: v for k, v in body.items() if k != "version"}
    assert body["version"] == hashlib.sha256(canonical(content)).hexdigest()
    assert response.headers["etag"] == f'"{body["version"]}"'
    assert response.content == canonical(body), "served as canonical JSON"

    fixture = ROUTES[ROUTE]
    assert body["route"]["id"] == ROUTE and body["route"]["schedule"] == fixture["schedule"]
    assert [s["poi_id"] for s in body["route"]["stops"]] == [s["poi_id"] for s in fixture["stops"]]
    assert body["route"]["stops"][0]["events"][0]["times"] == ["19:10", "19:55"]
    assert [p["id"] for p in body["pois"]] == sorted({s["poi_id"] for s in fixture["stops"]})
    assert all(p["properties"]["geofence"]["type"] == "Polygon" for p in body["pois"])
    assert isinstance(body["anchors"], list)
    rules = body["schedule_rules"]
    assert rules["timezone"] == "Asia/Shanghai" and rules["paces_kmh"] == {
        "slow": 3.0,
        "normal": 4.5,
        "fast": 5.5,
    }
    assert rules["detour_factor"] == 1.3
    assert f"{datetime.now(TZ).year}-10-01" in rules["public_holidays"]  # National Day, for PH

    sha = hashlib.sha256(COVER.read_bytes()).hexdigest()
    cover = {
        "url": f"/media/{sha}",
        "sha256": sha,
        "bytes": COVER.stat().st_size,
        "content_type": "image/png",
        "role": "cover",
    }
    assert cover in body["files"]
    for file in body["files"]:
        assert set(file) >= {"url", "sha256", "bytes", "content_type"}
        if file["url"].startswith("/media/"):
            got = await client.get(file["url"])
            assert got.status_code == 200, file
            assert (
                hashlib.sha256(got.content).hexdigest() == file["sha256"]
                and len(got.content) == file["bytes"]
            )
            assert got.headers["content-type"].split(";")[0] == file["content_type"]


async def test_if_none_match_gives_304(client) -> None:
    first = await client.get(URL)
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = await client.get(URL, headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b"" and again.headers["etag"] == etag
    stale = await client.get(URL, headers={"If-None-Match": '"0000"'})
    assert stale.status_code == 200 and stale.content == first.content


async def test_bundles_come_gzipped_when_asked(client) -> None:
    plain = await client.get(URL, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    zipped = await client.get(URL, headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert zipped.content == plain.content and zipped.headers["etag"] == plain.headers["etag"]
    refused = await client.get(URL, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


async def test_answers_from_memory_match_the_handlers(client, app, monkeypatch) -> None:
    """The first GET in a worker builds the manifest in the handler; later ones are answered from
    memory before the handler (CachedBundleMiddleware). Both must give the same status, headers and body."""
    variants = ({}, {"Accept-Encoding": "gzip"}, {"Accept-Encoding": "identity"})

    def answer(response: httpx.Response) -> tuple:
        headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
        return response.status_code, headers, response.content

    build = bundle_module.manifest

    async def from_memory(headers: dict) -> httpx.Response:
        async def handler_ran(*args, **kwargs):
            raise AssertionError("the handler ran; the answer should have come from memory")

        with monkeypatch.context() as patch:
            patch.setattr(bundle_module, "manifest", handler_ran)
            return await client.get(URL, headers=headers)

    etag = None
    for headers in variants:
        bundle_module._cache(app.state.runtime).items.clear()
        cold = await client.get(URL, headers=headers)
        assert bundle_module.manifest is build and bundle_module.cached(app.state.runtime, ROUTE) is not None
        warm = await from_memory(headers)
        assert answer(cold) == answer(warm), headers
        etag = warm.headers["etag"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": etag, "Accept-Encoding": "gzip"}):
        bundle_module._cache(app.state.runtime).items.clear()
        cold = await client.get(URL, headers=headers)
        warm = await from_memory(headers)
        assert cold.status_code == warm.status_code == 304
        assert answer(cold) == answer(warm), headers
    unknown = await client.get("/v1/routes/no-such-route/bundle")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


async def test_version_is_stable_across_restarts(client, settings) -> None:
    first = await client.get(URL)
    runtime = Runtime.create(settings)
    app = create_app(settings, runtime)
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://restarted") as other:
            second = await other.get(URL)
            assert (await other.get(URL, headers={"If-None-Match": first.headers["etag"]})).status_code == 304
    assert second.headers["etag"] == first.headers["etag"]
    assert second.content == first.content


# Another process (its own hash seed, no shared memory) builds the manifest from the same database.
OTHER_PROCESS = """
import asyncio, sys
import tourapi.app  # every feature registers its bundle sections on import
from tourapi.domain.routes import bundle
from tourapi.runtime import Runtime
from tourapi.settings import Settings

async def main():
    runtime = Runtime.create(Settings())
    try:
        sys.stdout.buffer.write((await bundle.manifest(runtime, sys.argv[1])).body)
    finally:
        await runtime.stop()

asyncio.run(main())
"""


async def test_version_is_the_same_in_another_process(client, settings) -> None:
    here = await client.get(URL)
    env = {**settings_env(settings), "PYTHONHASHSEED": "4242"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OTHER_PROCESS,
        ROUTE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert out == here.content
    assert json.loads(out)["version"] == here.headers["etag"].strip('"')


async def test_version_changes_exactly_when_its_content_changes(client, auth) -> None:
    admin, operator = await auth("admin"), await auth("operator")
    v1 = (await client.get(URL)).headers["etag"]
    # A POI that is not in the route: same bundle.
    r = await client.patch("/v1/pois/hanshan-temple", json={"capacity": 999}, headers=admin)
    assert r.status_code == 200
    assert (await client.get(URL)).headers["etag"] == v1
    # A POI in the route: new version, and the old ETag now gets the full body.
    r = await client.patch("/v1/pois/pipayu-pingtan-teahouse", json={"capacity": 999}, headers=admin)
    assert r.status_code == 200
    changed = await client.get(URL, headers={"If-None-Match": v1})
    assert changed.status_code == 200
    v2 = changed.headers["etag"]
    assert v2 != v1
    teahouse = next(p for p in changed.json()["pois"] if p["id"] == "pipayu-pingtan-teahouse")
    assert teahouse["properties"]["capacity"] == 999
    # Another route changing leaves this bundle alone; this route changing does not.
    r = await client.patch("/v1/routes/nets-evening-garden", json={"tags": ["x"]}, headers=operator)
    assert r.status_code == 200
    assert (await client.get(URL)).headers["etag"] == v2
    r = await client.patch(f"/v1/routes/{ROUTE}", json={"difficulty": "moderate"}, headers=operator)
    assert r.status_code == 200
    v3 = (await client.get(URL)).headers["etag"]
    assert v3 not in (v1, v2)
    # Writing the same content back gives the same version as before.
    r = await client.patch(f"/v1/routes/{ROUTE}", json={"difficulty": "easy"}, headers=operator)
    assert r.status_code == 200
    assert (await client.get(URL)).headers["etag"] == v2


async def test_unchanged_catalogue_needs_no_database(client, runtime) -> None:
    warm = await client.get(URL)

    def no_database():
        raise AssertionError("the database was used")

    real = runtime.sessionmaker
    runtime.sessionmaker = no_database  # type: ignore[assignment]
    try:
        cached = await client.get(URL, headers={"If-None-Match": warm.headers["etag"]})
        assert cached.status_code == 304
        full = await client.get(URL)
        assert full.status_code == 200 and full.content == warm.content
    finally:
        runtime.sessionmaker = real  # type: ignore[assignment]


async def test_withdrawn_routes_have_no_bundle(client, auth) -> None:
    assert (await client.get(URL)).status_code == 200
    r = await client.patch(f"/v1/routes/{ROUTE}", json={"status": "draft"}, headers=await auth("operator"))
    assert r.status_code == 200
    assert (await client.get(URL)).status_code == 404
    assert (await client.get("/v1/routes/NOT A ROUTE/bundle")).status_code == 404


async def test_contributors_add_sections_and_files(client) -> None:
    seen = {}

    async def extra(session, scope):
        seen["scope"] = scope
        return [{"id": "x", "poi": scope.poi_ids[0]}]

    def files(items):
        return [
            {
                "uri": "https://cdn.example/x.glb",
                "sha256": "a" * 64,
                "bytes": 10,
                "media_type": "model/gltf-binary",
            }
        ]

    bundle_module.register_bundle_contributor("test_extra", extra, files)
    try:
        body = (await client.get("/v1/routes/nets-evening-garden/bundle")).json()
    finally:
        bundle_module._CONTRIBUTORS.pop("test_extra", None)
    assert body["test_extra"] == [{"id": "x", "poi": "fenghuang-street"}]
    assert seen["scope"].route_id == "nets-evening-garden"
    assert {
        "url": "https://cdn.example/x.glb",
        "sha256": "a" * 64,
        "bytes": 10,
        "content_type": "model/gltf-binary",
    } in body["files"]


# ---- media ---------------------------------------------------------------------------------------------


async def test_media_is_immutable_and_content_addressed(client) -> None:
    data = COVER.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    response = await client.get(f"/media/{sha}")
    assert response.status_code == 200
    assert response.content == data and response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["etag"] == f'"{sha}"'
    again = await client.get(f"/media/{sha}", headers={"If-None-Match": f'"{sha}"'})
    assert again.status_code == 304 and again.content == b""
    assert (await client.get(f"/media/{'0' * 64}")).status_code == 404
    assert (await client.get("/media/not-a-hash")).status_code == 404
    glb = DEFAULT_FIXTURES / "assets" / "lantern.glb"
    if glb.exists():  # the anchors' assets live in the same store
        asset = await client.get(f"/media/{hashlib.sha256(glb.read_bytes()).hexdigest()}")
        assert asset.status_code == 200 and asset.headers["content-type"] == "model/gltf-binary"


async def test_operators_upload_media(client, auth) -> None:
    data = b"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>"
    sha = hashlib.sha256(data).hexdigest()
    headers = {**await auth("operator"), "Content-Type": "image/svg+xml"}
    created = await client.post("/v1/media", content=data, params={"filename": "dot.svg"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "url": f"/media/{sha}",
        "sha256": sha,
        "bytes": len(data),
        "type": "image/svg+xml",
    }
    assert (await client.post("/v1/media", content=data, headers=headers)).status_code == 200, (
        "already stored"
    )
    served = await client.get(f"/media/{sha}")
    assert served.content == data and served.headers["content-type"].startswith("image/svg+xml")
    bad = await client.post(
        "/v1/media", content=b"MZ", headers={**headers, "Content-Type": "application/x-msdownload"}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "content_type"
    assert (
        await client.post("/v1/media", content=data, headers={"Content-Type": "image/svg+xml"})
    ).status_code == 401
