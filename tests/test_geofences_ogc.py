"""Geofence questions from the in-memory index, the phone monitoring plan, and OGC API - Features."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import datetime

import pytest
import shapely

from tourapi.geo.geometry import haversine_m
from tourapi.settings import DEFAULT_FIXTURES
from tourapi.timeutil import TZ

FIXTURE = json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text())["features"]
FENCES = {f["properties"]["id"]: shapely.geometry.shape(f["properties"]["geofence"]) for f in FIXTURE}


@pytest.mark.parametrize(
    "poi_id", ["humble-administrators-garden", "pingjiang-road", "tiger-hill", "panmen-gate"]
)
async def test_containing_matches_shapely_on_the_fixture(client, poi_id: str) -> None:
    point = FENCES[poi_id].representative_point()
    response = await client.get("/v1/geofences/containing", params={"lon": point.x, "lat": point.y})
    expected = sorted(pid for pid, fence in FENCES.items() if fence.intersects(point))
    assert response.json()["poi_ids"] == expected
    assert poi_id in expected


@pytest.mark.parametrize("platform,limit", [("ios", 20), ("android", 100)])
async def test_monitor_plan_respects_platform_limits(client, platform: str, limit: int) -> None:
    at = datetime(2026, 7, 18, 20, 0, tzinfo=TZ).isoformat()  # a summer Saturday evening
    lon, lat = 120.6230, 31.3140  # Guanqian Street
    response = await client.get(
        "/v1/geofences/monitor", params={"lon": lon, "lat": lat, "platform": platform, "at": at}
    )
    plan = response.json()
    regions = plan["regions"]
    assert len(regions) + 1 <= limit  # plus the refresh circle
    assert all(r["radius_m"] >= 100 for r in regions)
    assert [r["distance_m"] for r in regions] == sorted(r["distance_m"] for r in regions)
    # Every circle encloses its whole geofence.
    for region in regions:
        fence = FENCES[region["id"]]
        far = max(haversine_m(region["lon"], region["lat"], x, y) for x, y in fence.exterior.coords)
        assert far <= region["radius_m"] + 0.5
    # Only venues open at that time are registered; each circle says when to re-ask.
    opening = {f["properties"]["id"]: f["properties"]["opening_hours"] for f in FIXTURE}
    from tourapi.timeutil import parse_schedule

    assert all(parse_schedule(opening[r["id"]]).is_open(datetime.fromisoformat(at)) for r in regions)
    refresh = plan["refresh"]
    assert refresh["radius_m"] >= 100
    assert (refresh["lon"], refresh["lat"]) == (lon, lat)
    if platform == "ios":
        assert len(regions) == min(
            19, sum(parse_schedule(h).is_open(datetime.fromisoformat(at)) for h in opening.values())
        )


async def test_monitor_refresh_circle_stops_before_the_next_unregistered_fence(client) -> None:
    at = datetime(2026, 7, 18, 20, 0, tzinfo=TZ).isoformat()
    plan = (
        await client.get(
            "/v1/geofences/monitor", params={"lon": 120.6230, "lat": 31.3140, "platform": "ios", "at": at}
        )
    ).json()
    registered = {r["id"] for r in plan["regions"]}
    from tourapi.geo.index import GeofenceIndex  # noqa: F401  (documented behaviour under test)

    unregistered = [pid for pid in FENCES if pid not in registered]
    if unregistered:
        # The device cannot reach an unregistered fence without leaving the refresh circle.
        here = shapely.Point(120.6230, 31.3140)
        nearest_gap = min(
            haversine_m(here.x, here.y, *shapely.ops.nearest_points(FENCES[pid], here)[0].coords[0])
            for pid in unregistered
        )
        assert plan["refresh"]["radius_m"] <= max(nearest_gap, 100) + 60  # circles are coarser than fences


async def test_monitor_rejects_unknown_platform(client) -> None:
    response = await client.get(
        "/v1/geofences/monitor", params={"lon": 120.62, "lat": 31.31, "platform": "symbian"}
    )
    assert response.status_code == 422 and response.json()["field"] == "query.platform"


async def test_ogc_landing_conformance_collections_items(client) -> None:
    landing = (await client.get("/ogc")).json()
    assert {"conformance", "data", "service-desc"} <= {link["rel"] for link in landing["links"]}
    conformance = (await client.get("/ogc/conformance")).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    collections = (await client.get("/ogc/collections")).json()["collections"]
    assert {c["id"] for c in collections} == {"pois", "geofences"}
    items = (await client.get("/ogc/collections/geofences/items", params={"limit": 5})).json()
    assert items["numberReturned"] == 5 and items["numberMatched"] == len(FIXTURE)
    assert items["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert any(link["rel"] == "next" for link in items["links"])
    one = (await client.get("/ogc/collections/pois/items/lion-grove-garden")).json()
    assert one["id"] == "lion-grove-garden" and one["geometry"]["type"] == "Point"
    missing = await client.get("/ogc/collections/rivers")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )


async def test_ogc_bbox_uses_the_polygon_for_geofences(client) -> None:
    # A box inside the Humble Administrator's Garden but away from its point.
    fence = FENCES["humble-administrators-garden"]
    x, y = fence.representative_point().coords[0]
    bbox = f"{x - 0.0001},{y - 0.0001},{x + 0.0001},{y + 0.0001}"
    fences = (await client.get("/ogc/collections/geofences/items", params={"bbox": bbox})).json()
    assert "humble-administrators-garden" in {f["id"] for f in fences["features"]}


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed (apt gdal-bin)")
async def test_gdal_reads_the_ogc_endpoint(server_url, client) -> None:
    """An independent OGC API client: GDAL lists both collections and counts every POI."""
    pois_total = len((await client.get("/v1/pois", params={"limit": 500})).json()["features"])
    listing = await _run("ogrinfo", "-ro", f"OAPIF:{server_url}/ogc")
    assert re.search(r"\bpois\b", listing) and re.search(r"\bgeofences\b", listing), listing
    for layer, geometry in (("pois", "Point"), ("geofences", "Polygon")):
        summary = await _run("ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=7", f"OAPIF:{server_url}/ogc", layer)
        count = int(re.search(r"Feature Count: (\d+)", summary).group(1))
        assert count == pois_total, summary
        assert geometry in summary
    features = await _run("ogrinfo", "-ro", "-oo", "PAGE_SIZE=7", "-q", f"OAPIF:{server_url}/ogc", "pois")
    assert len(re.findall(r"OGRFeature\(pois\)", features)) == pois_total, "GDAL paged through every feature"


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    return out.decode()
