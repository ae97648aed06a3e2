"""A4 check-in posters as PDF (reportlab): bilingual text in an embedded CJK font, the QR as vectors.

One poster is designed on a 180 x 267 mm frame (A4 minus 15 mm margins) and scaled into each cell of
the chosen layout: 1 (one per page), 2 (two per page, stacked) or 4 (2 x 2). Every glyph comes from the
vendored WenQuanYi Micro Hei (tourapi/assets/fonts), embedded as a subset with a ToUnicode map, so
Chinese prints as Chinese on any printer and the text stays searchable. The QR is drawn from the module
matrix as filled rectangles (one path), never as a bitmap, so it stays sharp at any print size.

CPU work: call ``render_posters`` through ``anyio.to_thread.run_sync``.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from importlib import resources

from reportlab.lib.colors import Color, black, white
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from tourapi.qr.render import QUIET_ZONE, qr_matrix

FONT = "WenQuanYiMicroHei"
MARGIN = 15 * mm  # printers cannot print to the edge; 12 mm is the least we allow
GUTTER = 8 * mm
FRAME_W, FRAME_H = 180 * mm, 267 * mm
LAYOUTS = {1: (1, 1), 2: (1, 2), 4: (2, 2)}  # posters per page -> (columns, rows)
GREY = Color(0.35, 0.35, 0.35)
SCAN_ZH = "打开夜游App扫码签到，或用手机相机扫描"
SCAN_EN = "Scan with the night-tour app or your phone camera to check in"
CODE_CAPTION = "扫不了码？在App中输入签到码  ·  Can't scan? Type this code in the app"
_font_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PosterSpec:
    venue_zh: str
    venue_en: str
    label_zh: str
    label_en: str
    url: str
    manual_code: str  # as printed, e.g. "K7M-3QX"
    footer: str  # small print for staff: which checkpoint, version and key this sheet is


def _register_font() -> None:
    with _font_lock:
        if FONT in pdfmetrics.getRegisteredFontNames():
            return
        path = resources.files("tourapi") / "assets" / "fonts" / "wqy-microhei.ttc"
        with resources.as_file(path) as file:
            pdfmetrics.registerFont(TTFont(FONT, str(file), subfontIndex=0))


def _fit(text: str, size: float, width: float) -> float:
    """The largest font size up to ``size`` at which ``text`` fits in ``width``."""
    natural = pdfmetrics.stringWidth(text, FONT, size)
    return size if natural <= width else size * width / natural


def _centred(c: Canvas, text: str, cx: float, baseline: float, size: float, width: float) -> None:
    c.setFont(FONT, _fit(text, size, width))
    c.drawCentredString(cx, baseline, text)


def _qr(c: Canvas, url: str, x: float, y: float, side: float) -> None:
    """The code inside a square of ``side`` (quiet zone included), horizontal runs merged into one path."""
    matrix = qr_matrix(url)
    n = len(matrix)
    cell = side / (n + 2 * QUIET_ZONE)
    x0, top = x + QUIET_ZONE * cell, y + side - QUIET_ZONE * cell
    path = c.beginPath()
    for r, row in enumerate(matrix):
        col = 0
        while col < n:
            if not row[col]:
                col += 1
                continue
            start = col
            while col < n and row[col]:
                col += 1
            path.rect(x0 + start * cell, top - (r + 1) * cell, (col - start) * cell, cell)
    c.setFillColor(black)
    c.drawPath(path, stroke=0, fill=1)


def _poster(c: Canvas, spec: PosterSpec, x: float, y: float, scale: float) -> None:
    """One poster with its frame's bottom-left corner at (x, y)."""
    c.saveState()
    c.translate(x, y)
    c.scale(scale, scale)
    w, h = FRAME_W, FRAME_H
    cx, text_w = w / 2, w - 10 * mm

    def top(offset_mm: float) -> float:
        return h - offset_mm * mm

    c.setFillColor(black)
    _centred(c, spec.venue_zh, cx, top(17), 15 * mm, text_w)
    _centred(c, spec.venue_en, cx, top(27), 7 * mm, text_w)
    c.setStrokeColor(black)
    c.setLineWidth(0.6 * mm)
    c.line(20 * mm, top(31), w - 20 * mm, top(31))
    _centred(c, spec.label_zh, cx, top(42), 9 * mm, text_w)
    _centred(c, spec.label_en, cx, top(50), 5.5 * mm, text_w)
    qr_side = 138 * mm  # white quiet zone included: nothing else is drawn inside this square
    c.setFillColor(white)
    c.rect(cx - qr_side / 2, top(53) - qr_side, qr_side, qr_side, stroke=0, fill=1)
    _qr(c, spec.url, cx - qr_side / 2, top(53) - qr_side, qr_side)
    c.setFillColor(GREY)
    _centred(c, CODE_CAPTION, cx, top(198), 4 * mm, text_w)
    c.setFillColor(black)
    c.setFont(FONT, 13 * mm)
    c.drawCentredString(cx, top(213), spec.manual_code, charSpace=2 * mm)
    _centred(c, SCAN_ZH, cx, top(228), 6 * mm, text_w)
    _centred(c, SCAN_EN, cx, top(237), 4.6 * mm, text_w)
    c.setFillColor(GREY)
    _centred(c, spec.footer, cx, top(262), 2.8 * mm, text_w)
    c.restoreState()


def render_posters(posters: list[PosterSpec], layout: int = 1, title: str = "Check-in posters") -> bytes:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}")
    _register_font()
    cols, rows = LAYOUTS[layout]
    page_w, page_h = A4
    cell_w = (page_w - 2 * MARGIN - (cols - 1) * GUTTER) / cols
    cell_h = (page_h - 2 * MARGIN - (rows - 1) * GUTTER) / rows
    scale = min(cell_w / FRAME_W, cell_h / FRAME_H, 1.0)
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, initialFontName=FONT, initialFontSize=10, pageCompression=1)
    c.setTitle(title)
    c.setAuthor("tourapi")
    c.setSubject("QR check-in posters")
    per_page = cols * rows
    for start in range(0, max(len(posters), 1), per_page):
        for n, spec in enumerate(posters[start : start + per_page]):
            col, row = n % cols, n // cols
            cell_x = MARGIN + col * (cell_w + GUTTER)
            cell_y = page_h - MARGIN - (row + 1) * cell_h - row * GUTTER
            if per_page > 1:
                c.saveState()
                c.setStrokeColor(GREY)
                c.setLineWidth(0.3)
                c.setDash(3, 3)
                c.rect(cell_x, cell_y, cell_w, cell_h, stroke=1, fill=0)  # cutting guide
                c.restoreState()
            x = cell_x + (cell_w - FRAME_W * scale) / 2
            y = cell_y + (cell_h - FRAME_H * scale) / 2
            _poster(c, spec, x, y, scale)
        c.showPage()
    c.save()
    return out.getvalue()
