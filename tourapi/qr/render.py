"""QR codes for checkpoint URLs: the module matrix, PNG (Pillow) and SVG (one vector path).

All functions are CPU work: call them through ``anyio.to_thread.run_sync``.
Error correction is level Q (25 %): posters get scuffed, rained on and photographed at an angle.
"""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from PIL import Image
from qrcode.constants import ERROR_CORRECT_Q

QUIET_ZONE = 4  # modules of white around the code, as the QR specification requires
MIN_PNG_SIZE = 64
MAX_PNG_SIZE = 4096


def qr_code(data: str, border: int = QUIET_ZONE) -> qrcode.QRCode:  # type: ignore[type-arg]
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_Q, border=border)
    code.add_data(data)  # qrcode splits it into byte and alphanumeric segments, whichever is shorter
    code.make(fit=True)
    return code


def qr_version(data: str) -> int:
    return int(qr_code(data).version)


def qr_matrix(data: str) -> list[list[bool]]:
    """Dark modules, row by row, without the quiet zone."""
    return [list(row) for row in qr_code(data, border=0).get_matrix()]


def png(data: str, size: int) -> bytes:
    """A ``size`` x ``size`` PNG: whole-pixel modules (crisp edges), centred on white."""
    code = qr_code(data)
    modules = code.modules_count + 2 * QUIET_ZONE
    box = max(1, size // modules)
    code.box_size = box
    image = code.make_image(fill_color="black", back_color="white").get_image().convert("L")
    canvas = Image.new("L", (max(size, image.width), max(size, image.height)), 255)
    canvas.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def svg(data: str) -> bytes:
    """Vector SVG (one path, white background), sized in millimetres at 1 mm per module."""
    code = qrcode.QRCode(
        error_correction=ERROR_CORRECT_Q,
        border=QUIET_ZONE,
        image_factory=qrcode.image.svg.SvgPathFillImage,
    )
    code.add_data(data)
    code.make(fit=True)
    return code.make_image().to_string(encoding="unicode").encode("utf-8")
