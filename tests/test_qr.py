"""QR tokens and images: format, size at error-correction Q, and decoding with independent decoders.

The PNG is decoded by zxing-cpp and by zbar (zbarimg); the SVG is rasterised by a real browser engine
(headless Chromium) and decoded by zxing-cpp. Neither shares code with the qrcode library that drew them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import qrcode
import zxingcpp
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image
from qrcode.constants import ERROR_CORRECT_Q

from tourapi.qr import tokens
from tourapi.qr.render import qr_version
from tourapi.security.keys import Keyring

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NETS = "master-of-the-nets-garden"
LION = "lion-grove-garden"
RING = Keyring(master=b"m" * 32, active={"qr": ["a1b2", "0c0d"]}, retired={"qr": {"dead"}})
REALISTIC_BASE = "https://tour.example.cn"


def need(tool: str, *alternatives: str) -> str:
    for name in (tool, *alternatives):
        if path := shutil.which(name):
            return path
    if IN_CI:
        pytest.fail(f"{tool} is required in CI (see .ci/run)")
    pytest.skip(f"{tool} is not installed")


def decode(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


def zbar(path: Path) -> list[str]:
    exe = need("zbarimg")
    result = subprocess.run(
        [exe, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line for line in result.stdout.splitlines() if line]


def rasterise_svg(svg: bytes, folder: Path, pixels: int = 480) -> Image.Image:
    """Draw the SVG with headless Chromium, scaled to ``pixels`` (a vector image scales cleanly)."""
    browser = need("chromium", "chromium-browser", "google-chrome")
    (folder / "qr.svg").write_bytes(svg)
    page = folder / "page.html"
    page.write_text(
        '<!doctype html><html><body style="margin:0;background:#fff">'
        f'<img src="qr.svg" style="display:block;width:{pixels}px;height:{pixels}px"></body></html>'
    )
    shot = folder / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={folder / 'profile'}",
            f"--window-size={pixels},{pixels}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return Image.open(shot).convert("RGB")


# ---- token format ------------------------------------------------------------------------------------------


@hsettings(max_examples=200, deadline=None)
@given(checkpoint_id=st.integers(0, 2**31), version=st.integers(1, 2**20))
def test_tokens_round_trip(checkpoint_id: int, version: int) -> None:
    token = tokens.sign_with(RING, checkpoint_id, version)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")  # QR alphanumeric mode
    ref = tokens.verify(token, RING)
    assert (ref.kid, ref.checkpoint_id, ref.version) == ("a1b2", checkpoint_id, version)


def test_tokens_are_short() -> None:
    assert len(tokens.sign_with(RING, 1, 1)) == 23  # 14 bytes: kid 2 + id 1 + version 1 + MAC 10
    assert len(tokens.sign_with(RING, 16_000, 100)) == 24
    assert len(tokens.sign_with(RING, 2_000_000, 16_000)) == 28  # 17 bytes


@pytest.mark.parametrize("checkpoint_id,version", [(1, 1), (41, 3), (9_999, 50), (2_000_000, 16_000)])
def test_poster_qr_stays_version_6_or_less_at_level_q(checkpoint_id: int, version: int) -> None:
    url = f"{REALISTIC_BASE}/c/{tokens.sign_with(RING, checkpoint_id, version)}"
    # Measured independently of tourapi.qr.render, with the settings the brief asks for.
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_Q)
    code.add_data(url)
    code.make(fit=True)
    assert code.version <= 6
    assert qr_version(url) == code.version
    if checkpoint_id < 128 and version < 128:
        assert code.version == 4 and code.modules_count == 33  # the fixture's case: 33 x 33 modules


def test_a_fifty_character_base_url_still_fits_version_6() -> None:
    base = "https://night-tours.suzhou-culture-tourism.example"
    assert len(base) == 50
    url = f"{base}/c/{tokens.sign_with(RING, 16_000, 100)}"
    assert qr_version(url) <= 6


def test_every_single_character_change_is_refused() -> None:
    token = tokens.sign_with(RING, 12, 2)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    for i in range(len(token)):
        for c in alphabet:
            if c == token[i]:
                continue
            with pytest.raises(tokens.TokenError) as refused:
                tokens.verify(token[:i] + c + token[i + 1 :], RING)
            assert refused.value.slug in ("invalid-token", "unknown-key")


def test_non_canonical_spellings_are_refused() -> None:
    token = tokens.sign_with(RING, 12, 2)
    raw = base64.b32decode(token + "=" * (-len(token) % 8))
    # 23 characters carry 115 bits for 112: the last character's 3 low bits are padding. A spelling
    # with other padding bits decodes to the same bytes, but it is not what we printed.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    last = alphabet.index(token[-1])
    twin = token[:-1] + alphabet[last ^ 0b001]
    assert base64.b32decode(twin + "=" * (-len(twin) % 8)) == raw
    with pytest.raises(tokens.TokenError, match="altered"):
        tokens.verify(twin, RING)
    # An overlong varint for the same checkpoint id, re-signed correctly: still not canonical.
    body = raw[:2] + bytes([12 | 0x80, 0x00]) + raw[3:-10]
    overlong = base64.b32encode(body + tokens._mac(RING.material("qr", "a1b2"), body)).decode().rstrip("=")
    with pytest.raises(tokens.TokenError, match="canonical"):
        tokens.verify(overlong, RING)
    # Case carries no information (a lowercased URL still works).
    assert tokens.verify(token.lower(), RING).checkpoint_id == 12


def test_key_states() -> None:
    token = tokens.sign("0c0d", RING.material("qr", "0c0d"), 5, 1)
    assert tokens.verify(token, RING).kid == "0c0d"  # an older key that is still active
    unknown = tokens.sign("eeee", RING.material("qr", "eeee"), 5, 1)
    with pytest.raises(tokens.TokenError) as refused:
        tokens.verify(unknown, RING)
    assert refused.value.slug == "unknown-key"
    ring = Keyring(master=b"m" * 32, active={"qr": ["a1b2"]}, retired={"qr": {"0c0d"}})
    with pytest.raises(tokens.TokenError) as refused:
        tokens.verify(token, ring)
    assert refused.value.slug == "retired-key"


def test_manual_codes() -> None:
    codes = {tokens.new_manual_code() for _ in range(2000)}
    assert len(codes) > 1990
    assert all(len(c) == 6 and not set(c) & set("01OILU") for c in codes)
    assert tokens.normalise_manual_code(" k7m-3qx ") == "K7M3QX"
    assert tokens.normalise_manual_code("K7M 3QX") == "K7M3QX"
    for bad in ("K7M3Q", "K7M3QXX", "K7M3Q0", "K7M3QI", ""):
        assert tokens.normalise_manual_code(bad) is None
    assert tokens.display_manual_code("K7M3QX") == "K7M-3QX"


# ---- QR images through the API -----------------------------------------------------------------------------


async def checkpoints(client, auth, poi: str, user: str = "admin") -> list[dict]:
    response = await client.get(f"/v1/pois/{poi}/checkpoints", headers=await auth(user))
    assert response.status_code == 200, response.text
    return response.json()


async def test_png_decodes_to_exactly_the_checkpoint_url(client, auth, tmp_path) -> None:
    staff = await auth("staff-nets")
    for checkpoint in await checkpoints(client, auth, NETS, "staff-nets"):
        response = await client.get(
            f"/v1/checkpoints/{checkpoint['id']}/qr.png", params={"size": 300}, headers=staff
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"].startswith("private")
        image = Image.open(io.BytesIO(response.content))
        assert image.size == (300, 300)
        assert decode(image) == [checkpoint["url"]]
        path = tmp_path / f"{checkpoint['id']}.png"
        path.write_bytes(response.content)
        assert await asyncio.to_thread(zbar, path) == [checkpoint["url"]]
    default = await client.get(f"/v1/checkpoints/{checkpoint['id']}/qr.png", headers=staff)
    assert Image.open(io.BytesIO(default.content)).size == (512, 512)
    too_small = await client.get(
        f"/v1/checkpoints/{checkpoint['id']}/qr.png", params={"size": 10}, headers=staff
    )
    assert too_small.status_code in (400, 422)


async def test_svg_is_vector_and_decodes_to_exactly_the_checkpoint_url(client, auth, tmp_path) -> None:
    checkpoint = (await checkpoints(client, auth, NETS))[0]
    response = await client.get(
        f"/v1/checkpoints/{checkpoint['id']}/qr.svg", headers=await auth("staff-nets")
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    svg = response.content
    assert b"<path" in svg and b"<image" not in svg and b"base64" not in svg
    image = await asyncio.to_thread(rasterise_svg, svg, tmp_path)
    assert decode(image) == [checkpoint["url"]]


async def test_qr_images_follow_key_rotation_and_revocation(client, auth, runtime) -> None:
    from tourapi.security.keys import rotate

    checkpoint = (await checkpoints(client, auth, NETS))[0]
    async with runtime.sessionmaker() as session:
        await rotate(session, "qr")
        await session.commit()
    await runtime.reload_keys()
    staff = await auth("staff-nets")
    revoked = (await client.post(f"/v1/checkpoints/{checkpoint['id']}/revoke", headers=staff)).json()
    assert revoked["url"] != checkpoint["url"]
    png = await client.get(f"/v1/checkpoints/{checkpoint['id']}/qr.png", headers=staff)
    assert decode(Image.open(io.BytesIO(png.content))) == [revoked["url"]]


async def test_staff_see_only_their_own_venues_codes(client, auth) -> None:
    lion = (await checkpoints(client, auth, LION))[0]
    staff = await auth("staff-nets")
    for suffix in ("qr.png", "qr.svg", ""):
        path = f"/v1/checkpoints/{lion['id']}/{suffix}".rstrip("/")
        response = await client.get(path, headers=staff)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["type"] == "urn:tourapi:problem:not-your-venue"
        assert (await client.get(path, headers=await auth("operator"))).status_code == 200
        assert (await client.get(path, headers=await auth("admin"))).status_code == 200
        assert (await client.get(path)).status_code == 401
    listing = await client.get(f"/v1/pois/{LION}/checkpoints", headers=staff)
    assert listing.status_code == 403
    for method, path in (
        ("post", f"/v1/checkpoints/{lion['id']}/revoke"),
        ("delete", f"/v1/checkpoints/{lion['id']}"),
    ):
        assert (await client.request(method.upper(), path, headers=staff)).status_code == 403
        assert (await client.request(method.upper(), path, headers=await auth("operator"))).status_code == 403
    patched = await client.patch(
        f"/v1/checkpoints/{lion['id']}", json={"label": {"zh-Hans": "门", "en": "Gate"}}, headers=staff
    )
    assert patched.status_code == 403
    created = await client.post(
        f"/v1/pois/{LION}/checkpoints", json={"label": {"zh-Hans": "门", "en": "Gate"}}, headers=staff
    )
    assert created.status_code == 403


# ---- checkpoint management --------------------------------------------------------------------------------


async def test_create_relabel_revoke(client, auth) -> None:
    staff = await auth("staff-nets")
    created = await client.post(
        f"/v1/pois/{NETS}/checkpoints",
        json={"label": {"zh-Hans": "濯缨水阁", "en": "Zhuoying Water Pavilion"}, "require_proximity": True},
        headers=staff,
    )
    assert created.status_code == 201, created.text
    checkpoint = created.json()
    assert checkpoint["slug"] == "zhuoying-water-pavilion" and checkpoint["version"] == 1
    assert created.headers["location"] == f"/v1/checkpoints/{checkpoint['id']}"
    duplicate = await client.post(
        f"/v1/pois/{NETS}/checkpoints",
        headers=staff,
        json={"label": {"zh-Hans": "水阁", "en": "Water pavilion"}, "slug": "zhuoying-water-pavilion"},
    )
    assert duplicate.status_code == 409
    no_english = await client.post(
        f"/v1/pois/{NETS}/checkpoints", json={"label": {"zh-Hans": "水阁"}}, headers=staff
    )
    assert no_english.status_code == 422 and no_english.json()["field"] == "label.en"
    relabelled = await client.patch(
        f"/v1/checkpoints/{checkpoint['id']}",
        headers=staff,
        json={"label": {"zh-Hans": "濯缨水阁", "en": "Water Pavilion"}},
    )
    assert relabelled.status_code == 200
    assert relabelled.json()["label"] == "Water Pavilion"
    # Relabelling does not invalidate the printed code.
    assert relabelled.json()["url"] == checkpoint["url"] and relabelled.json()["version"] == 1
    zh = await client.get(
        f"/v1/checkpoints/{checkpoint['id']}", headers={**staff, "Accept-Language": "zh-CN"}
    )
    assert zh.json()["label"] == "濯缨水阁"
    revoked = (await client.post(f"/v1/checkpoints/{checkpoint['id']}/revoke", headers=staff)).json()
    assert revoked["version"] == 2 and revoked["manual_code"] != checkpoint["manual_code"]
    assert revoked["revoked_at"] is not None


# ---- the landing page -------------------------------------------------------------------------------------


async def test_landing_page_names_the_venue_and_links_to_the_app(client, auth) -> None:
    checkpoint = (await checkpoints(client, auth, NETS))[0]
    token = checkpoint["url"].rsplit("/", 1)[1]
    assert checkpoint["url"] == f"http://127.0.0.1:8000/c/{token}"
    response = await client.get(f"/c/{token}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert "网师园" in html and "Master of the Nets Garden" in html
    assert checkpoint["i18n"]["label"]["zh-Hans"] in html
    assert f'href="tourapp://checkin?token={token}"' in html
    assert checkpoint["manual_code"] in html
    assert "<script" not in html and "src=" not in html and "@import" not in html
    revoked = await client.post(f"/v1/checkpoints/{checkpoint['id']}/revoke", headers=await auth("admin"))
    assert revoked.status_code == 200
    old = (await client.get(f"/c/{token}")).text
    assert "This poster was replaced" in old and "网师园" not in old and checkpoint["manual_code"] not in old
    junk = (await client.get(f"/c/{uuid.uuid4().hex.upper()}")).text
    assert "This code is not valid" in junk
