"""A4 poster PDFs: every page rasterised and decoded, CJK text really drawn with an embedded font,
the QR as vectors, print margins, layouts, and staff scoping.

Pages are rasterised by PDFium (pypdfium2) and decoded by zxing-cpp, and page 1 also by poppler
(pdftoppm) and decoded by zbar; none of them shares code with reportlab or qrcode.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from PIL import Image

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NETS = "master-of-the-nets-garden"
LION = "lion-grove-garden"
DPI = 150
MM = DPI / 25.4


def need(tool: str) -> str:
    if path := shutil.which(tool):
        return path
    if IN_CI:
        pytest.fail(f"{tool} is required in CI (see .ci/run)")
    pytest.skip(f"{tool} is not installed")


def run(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=120).stdout


def decode(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


def pages(pdf: bytes) -> list[tuple[Image.Image, str, list[int]]]:
    """(image at DPI, extracted text, page object types) per page."""
    document = pdfium.PdfDocument(pdf)
    out = []
    for page in document:
        image = page.render(scale=DPI / 72).to_pil().convert("RGB")
        text = page.get_textpage().get_text_range()
        kinds = [obj.type for obj in page.get_objects(max_depth=5)]
        out.append((image, text, kinds))
    return out


async def checkpoints(client, auth, poi: str) -> list[dict]:
    response = await client.get(f"/v1/pois/{poi}/checkpoints", headers=await auth("admin"))
    assert response.status_code == 200, response.text
    return response.json()


async def posters(client, headers: dict, poi: str = NETS, **params) -> bytes:
    response = await client.get(f"/v1/pois/{poi}/posters.pdf", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"].startswith("private")
    return response.content


async def test_one_poster_per_page_decodes_and_reads_correctly(client, auth, tmp_path) -> None:
    spots = await checkpoints(client, auth, NETS)
    assert len(spots) >= 2
    pdf = await posters(client, await auth("staff-nets"))
    rendered = await asyncio.to_thread(pages, pdf)
    assert len(rendered) == len(spots)
    for (image, text, kinds), spot in zip(rendered, spots):
        assert abs(image.width - 210 * MM) <= 1 and abs(image.height - 297 * MM) <= 1  # A4 portrait
        assert decode(image) == [spot["url"]]
        for expected in (
            "网师园",
            "Master of the Nets Garden",
            spot["i18n"]["label"]["zh-Hans"],
            spot["i18n"]["label"]["en"],
            spot["manual_code"],
            "扫码签到",
            "Scan with",
        ):
            assert expected in text, (expected, text)
        # The QR is vector paths, never a picture.
        assert pdfium_c.FPDF_PAGEOBJ_IMAGE not in kinds and pdfium_c.FPDF_PAGEOBJ_PATH in kinds
        # Print margins: nothing is drawn within 12 mm of an edge.
        ink = np.asarray(image.convert("L")) < 200
        edge = int(12 * MM)
        assert not ink[:edge].any() and not ink[-edge:].any()
        assert not ink[:, :edge].any() and not ink[:, -edge:].any()
        assert ink.any()


async def test_independent_rasteriser_and_decoder(client, auth, tmp_path) -> None:
    pdftoppm, zbarimg = need("pdftoppm"), need("zbarimg")
    spots = await checkpoints(client, auth, NETS)
    (tmp_path / "posters.pdf").write_bytes(await posters(client, await auth("staff-nets")))
    await asyncio.to_thread(
        run,
        pdftoppm,
        "-r",
        "150",
        "-gray",
        "-png",
        "-f",
        "1",
        "-l",
        "1",
        str(tmp_path / "posters.pdf"),
        str(tmp_path / "page"),
    )
    page = next(tmp_path.glob("page*.png"))
    decoded = await asyncio.to_thread(run, zbarimg, "--quiet", "--raw", str(page), check=False)
    assert decoded.splitlines() == [spots[0]["url"]]


async def test_cjk_font_is_embedded(client, auth, tmp_path) -> None:
    pdffonts = need("pdffonts")
    (tmp_path / "posters.pdf").write_bytes(await posters(client, await auth("admin")))
    listing = (await asyncio.to_thread(run, pdffonts, str(tmp_path / "posters.pdf"))).splitlines()[2:]
    assert listing, "the PDF uses fonts"
    for line in listing:
        name, columns = line.split()[0], line.split()
        # name, type..., encoding, emb, sub, uni, object, generation: every font embedded, with ToUnicode.
        assert "WenQuanYi" in name, line
        assert columns[-5:-2] == ["yes", "yes", "yes"], line


async def test_four_per_page_layout(client, auth) -> None:
    staff = await auth("staff-nets")
    for n in range(3):
        created = await client.post(
            f"/v1/pois/{NETS}/checkpoints",
            headers=staff,
            json={"label": {"zh-Hans": f"展厅{n + 1}", "en": f"Hall {n + 1}"}},
        )
        assert created.status_code == 201, created.text
    spots = await checkpoints(client, auth, NETS)
    assert len(spots) == 5
    rendered = await asyncio.to_thread(pages, await posters(client, staff, layout=4))
    assert len(rendered) == 2
    assert sorted(decode(rendered[0][0])) == sorted(s["url"] for s in spots[:4])
    assert decode(rendered[1][0]) == [spots[4]["url"]]
    assert all(s["manual_code"] in rendered[0][1] for s in spots[:4])
    two = await asyncio.to_thread(pages, await posters(client, staff, layout=2))
    assert len(two) == 3 and sorted(decode(two[0][0])) == sorted(s["url"] for s in spots[:2])
    only = await asyncio.to_thread(pages, await posters(client, staff, checkpoint=spots[3]["id"]))
    assert len(only) == 1 and decode(only[0][0]) == [spots[3]["url"]]
    bad = await client.get(f"/v1/pois/{NETS}/posters.pdf", params={"layout": 3}, headers=staff)
    assert bad.status_code == 422 and bad.json()["field"] == "layout"
    other = await client.get(f"/v1/pois/{NETS}/posters.pdf", params={"checkpoint": 999_999}, headers=staff)
    assert other.status_code == 404


async def test_staff_of_one_venue_cannot_print_another_venues_posters(client, auth) -> None:
    staff = await auth("staff-nets")
    response = await client.get(f"/v1/pois/{LION}/posters.pdf", headers=staff)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/v1/pois/{LION}/posters.pdf", headers=await auth("admin"))).status_code == 200
    assert (
        await client.get(f"/v1/pois/{LION}/posters.pdf", headers=await auth("operator"))
    ).status_code == 200
    assert (await client.get(f"/v1/pois/{LION}/posters.pdf")).status_code == 401
    # staff-nets is bound to two venues: both are theirs.
    assert (
        await client.get("/v1/pois/humble-administrators-garden/posters.pdf", headers=staff)
    ).status_code == 200


async def test_revoked_poster_prints_the_new_code(client, auth) -> None:
    staff = await auth("staff-nets")
    spot = (await checkpoints(client, auth, NETS))[0]
    fresh = (await client.post(f"/v1/checkpoints/{spot['id']}/revoke", headers=staff)).json()
    rendered = await asyncio.to_thread(pages, await posters(client, staff, checkpoint=spot["id"]))
    assert decode(rendered[0][0]) == [fresh["url"]] != [spot["url"]]
    assert fresh["manual_code"] in rendered[0][1] and f"v{fresh['version']}" in rendered[0][1]


async def test_venue_without_checkpoints(client, auth) -> None:
    staff = await auth("staff-nets")
    for spot in await checkpoints(client, auth, NETS):
        assert (await client.delete(f"/v1/checkpoints/{spot['id']}", headers=staff)).status_code == 204
    response = await client.get(f"/v1/pois/{NETS}/posters.pdf", headers=staff)
    assert response.status_code == 404 and "no active checkpoints" in response.json()["detail"]


def test_poster_example_in_the_docs_is_a_real_poster() -> None:
    image = Image.open(Path(__file__).parents[1] / "docs" / "img" / "poster-example.png").convert("RGB")
    urls = decode(image)
    assert len(urls) == 1 and "/c/" in urls[0]
