"""The Suzhou anchor fixtures: enough night scenes, inside their venues, with honest, real asset files."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import wave
import zipfile
from collections import Counter
from datetime import datetime, timedelta

from shapely.geometry import Point, shape
from shapely.ops import nearest_points

from tourapi.geo.geometry import haversine_m
from tourapi.settings import DEFAULT_FIXTURES
from tourapi.timeutil import TZ, parse_schedule

ANCHORS = json.loads((DEFAULT_FIXTURES / "anchors.json").read_text(encoding="utf-8"))["anchors"]
POIS = {
    f["properties"]["id"]: f
    for f in json.loads((DEFAULT_FIXTURES / "pois.geojson").read_text(encoding="utf-8"))["features"]
}
ASSET_DIR = DEFAULT_FIXTURES / "assets"


def _assets(anchor: dict) -> list[dict]:
    found = list(anchor["assets"])
    if anchor.get("narration"):
        found.append(anchor["narration"])
    found += [m["marker"] for m in anchor["localization"] if m["method"] == "image"]
    return found


def test_at_least_thirty_anchors_with_unique_ids_over_several_venues() -> None:
    ids = [a["id"] for a in ANCHORS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert len({a["poi_id"] for a in ANCHORS}) >= 20
    assert all(a["poi_id"] in POIS for a in ANCHORS)


def test_anchors_lie_inside_or_at_the_edge_of_their_geofence() -> None:
    for anchor in ANCHORS:
        position = anchor["geopose"]["position"]
        fence = shape(POIS[anchor["poi_id"]]["properties"]["geofence"])
        point = Point(position["lon"], position["lat"])
        if not fence.covers(point):
            edge = nearest_points(fence, point)[0]
            assert haversine_m(point.x, point.y, edge.x, edge.y) < 5, anchor["id"]


def test_scenes_are_night_only() -> None:
    # Sample every daytime hour of a week in each season: never visible; visible on some evening.
    for anchor in ANCHORS:
        schedule = parse_schedule(anchor["visibility"]["schedule"])
        evenings = 0
        for month in (1, 4, 7, 10):
            for day in range(7):
                date = datetime(2026, month, 6, tzinfo=TZ) + timedelta(days=day)
                for hour in range(7, 18):
                    assert not schedule.is_open(date.replace(hour=hour)), (anchor["id"], date, hour)
                evenings += schedule.is_open(date.replace(hour=20, minute=30))
        assert evenings > 0, anchor["id"]


def test_altitude_modes_and_localisation_strategies_are_mixed() -> None:
    modes = Counter(a["altitude_mode"] for a in ANCHORS)
    assert modes["terrain"] >= 5 and modes["rooftop"] >= 5
    methods = Counter(m["method"] for a in ANCHORS for m in a["localization"])
    assert {"geospatial", "image", "vps", "gps"} <= set(methods)
    providers = {m["provider"] for a in ANCHORS for m in a["localization"] if m["method"] == "vps"}
    assert len(providers) >= 2
    for anchor in ANCHORS:
        kinds = [m["method"] for m in anchor["localization"]]
        if "geospatial" in kinds:
            assert "image" in kinds, f"{anchor['id']}: geospatial without an image-marker fallback"
        gps = [m for m in anchor["localization"] if m["method"] == "gps"]
        assert all(m["error_m"] > 0 for m in gps)


def test_quaternions_are_unit_length() -> None:
    for anchor in ANCHORS:
        q = anchor["geopose"]["quaternion"]
        assert math.isclose(math.hypot(q["x"], q["y"], q["z"], q["w"]), 1.0, abs_tol=1e-6), anchor["id"]


def test_every_asset_is_a_real_file_with_that_hash_and_size() -> None:
    for anchor in ANCHORS:
        for asset in _assets(anchor):
            assert asset["uri"] == f"/media/{asset['sha256']}"
            matches = [
                p
                for p in ASSET_DIR.iterdir()
                if hashlib.sha256(p.read_bytes()).hexdigest() == asset["sha256"]
            ]
            assert len(matches) == 1, (anchor["id"], asset)
            path = matches[0]
            assert path.stat().st_size == asset["bytes"]
            expected_suffix = {
                "model/gltf-binary": ".glb",
                "model/vnd.usdz+zip": ".usdz",
                "image/png": ".png",
                "audio/wav": ".wav",
            }[asset["media_type"]]
            assert path.suffix == expected_suffix


def test_asset_files_are_valid_in_their_formats() -> None:
    for path in sorted(ASSET_DIR.iterdir()):
        data = path.read_bytes()
        if path.suffix == ".glb":
            magic, version, length = struct.unpack("<4sII", data[:12])
            assert (magic, version, length) == (b"glTF", 2, len(data))
            json_length, kind = struct.unpack("<I4s", data[12:20])
            assert kind == b"JSON"
            document = json.loads(data[20 : 20 + json_length])
            assert document["asset"]["version"] == "2.0"
            bin_length, bin_kind = struct.unpack("<I4s", data[20 + json_length : 28 + json_length])
            assert bin_kind == b"BIN\0" and bin_length >= document["buffers"][0]["byteLength"]
        elif path.suffix == ".usdz":
            with zipfile.ZipFile(path) as archive:
                first = archive.infolist()[0]
                assert first.filename.endswith(".usda") and first.compress_type == zipfile.ZIP_STORED
                layer = archive.read(first).decode()
                assert layer.startswith("#usda 1.0") and 'upAxis = "Y"' in layer
            name_length, extra_length = struct.unpack(
                "<HH", data[first.header_offset + 26 : first.header_offset + 30]
            )
            assert (first.header_offset + 30 + name_length + extra_length) % 64 == 0, (
                "USDZ data must be 64-byte aligned"
            )
        elif path.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        elif path.suffix == ".wav":
            with wave.open(str(path)) as audio:
                assert audio.getnframes() > 0 and audio.getframerate() > 0
