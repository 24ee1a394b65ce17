"""The progress PNG (the best score over evaluations, for MCP clients that show images): rasterised with numpy
and written with zlib, in a built-in 5x7 pixel font, so no plotting library or font file is needed."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from ..svg import score_axis
from ..svg import tick_label as _tick_label
from ..svg import ticks as _ticks

# 5x7 glyphs, one byte per column, bit 0 at the top (the classic HD44780-style font).
_FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0), "0": (0x3E, 0x51, 0x49, 0x45, 0x3E), "1": (0x00, 0x42, 0x7F, 0x40, 0x00),
    "2": (0x42, 0x61, 0x51, 0x49, 0x46), "3": (0x21, 0x41, 0x45, 0x4B, 0x31), "4": (0x18, 0x14, 0x12, 0x7F, 0x10),
    "5": (0x27, 0x45, 0x45, 0x45, 0x39), "6": (0x3C, 0x4A, 0x49, 0x49, 0x30), "7": (0x01, 0x71, 0x09, 0x05, 0x03),
    "8": (0x36, 0x49, 0x49, 0x49, 0x36), "9": (0x06, 0x49, 0x49, 0x29, 0x1E), ".": (0x00, 0x60, 0x60, 0x00, 0x00),
    "-": (0x08, 0x08, 0x08, 0x08, 0x08), "+": (0x08, 0x08, 0x3E, 0x08, 0x08), ":": (0x00, 0x36, 0x36, 0x00, 0x00),
    "(": (0x00, 0x1C, 0x22, 0x41, 0x00), ")": (0x00, 0x41, 0x22, 0x1C, 0x00), "=": (0x14, 0x14, 0x14, 0x14, 0x14),
    "/": (0x20, 0x10, 0x08, 0x04, 0x02), ",": (0x00, 0x50, 0x30, 0x00, 0x00),
    "A": (0x7E, 0x11, 0x11, 0x11, 0x7E), "B": (0x7F, 0x49, 0x49, 0x49, 0x36), "C": (0x3E, 0x41, 0x41, 0x41, 0x22),
    "D": (0x7F, 0x41, 0x41, 0x22, 0x1C), "E": (0x7F, 0x49, 0x49, 0x49, 0x41), "F": (0x7F, 0x09, 0x09, 0x09, 0x01),
    "G": (0x3E, 0x41, 0x49, 0x49, 0x7A), "H": (0x7F, 0x08, 0x08, 0x08, 0x7F), "I": (0x00, 0x41, 0x7F, 0x41, 0x00),
    "J": (0x20, 0x40, 0x41, 0x3F, 0x01), "K": (0x7F, 0x08, 0x14, 0x22, 0x41), "L": (0x7F, 0x40, 0x40, 0x40, 0x40),
    "M": (0x7F, 0x02, 0x0C, 0x02, 0x7F), "N": (0x7F, 0x04, 0x08, 0x10, 0x7F), "O": (0x3E, 0x41, 0x41, 0x41, 0x3E),
    "P": (0x7F, 0x09, 0x09, 0x09, 0x06), "Q": (0x3E, 0x41, 0x51, 0x21, 0x5E), "R": (0x7F, 0x09, 0x19, 0x29, 0x46),
    "S": (0x46, 0x49, 0x49, 0x49, 0x31), "T": (0x01, 0x01, 0x7F, 0x01, 0x01), "U": (0x3F, 0x40, 0x40, 0x40, 0x3F),
    "V": (0x1F, 0x20, 0x40, 0x20, 0x1F), "W": (0x3F, 0x40, 0x38, 0x40, 0x3F), "X": (0x63, 0x14, 0x08, 0x14, 0x63),
    "Y": (0x07, 0x08, 0x70, 0x08, 0x07), "Z": (0x61, 0x51, 0x49, 0x45, 0x43),
}

_WHITE = (255, 255, 255)
_INK = (52, 58, 64)
_GRID = (228, 231, 235)
_BLUE = (31, 95, 191)
_ORANGE = (217, 72, 15)


def _text(img: np.ndarray, x: int, y: int, text: str, color: tuple[int, int, int], scale: int = 1,
          anchor: str = "left") -> None:
    """Draw text with its top-left corner at (x, y) (or its right end / middle at x)."""
    text = text.upper()
    advance = 6 * scale
    width = advance * len(text) - scale
    if anchor == "right":
        x -= width
    elif anchor == "middle":
        x -= width // 2
    h, w = img.shape[:2]
    for n, ch in enumerate(text):
        columns = _FONT.get(ch, _FONT[" "])
        for c, bits in enumerate(columns):
            for r in range(7):
                if bits >> r & 1:
                    x0, y0 = x + n * advance + c * scale, y + r * scale
                    if 0 <= x0 and x0 + scale <= w and 0 <= y0 and y0 + scale <= h:
                        img[y0:y0 + scale, x0:x0 + scale] = color


def _hline(img: np.ndarray, x0: float, x1: float, y: float, color: tuple[int, int, int], thick: int = 1) -> None:
    h, w = img.shape[:2]
    a, b = sorted((int(round(x0)), int(round(x1))))
    top = int(round(y)) - thick // 2
    img[max(top, 0):max(min(top + thick, h), 0), max(a, 0):max(min(b + 1, w), 0)] = color


def _vline(img: np.ndarray, x: float, y0: float, y1: float, color: tuple[int, int, int], thick: int = 1) -> None:
    h, w = img.shape[:2]
    a, b = sorted((int(round(y0)), int(round(y1))))
    left = int(round(x)) - thick // 2
    img[max(a, 0):max(min(b + 1, h), 0), max(left, 0):max(min(left + thick, w), 0)] = color


def _png(img: np.ndarray) -> bytes:
    height, width = img.shape[:2]
    raw = b"".join(b"\x00" + img[row].tobytes() for row in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def render_progress_png(points: list[tuple[int, float]], target: float | None, width: int = 640,
                        height: int = 360) -> bytes:
    """A PNG (RGB) of the best score over evaluations, with a dashed line at `target` if given.

    `points` are (evaluation number, best score so far), as `progress_points` returns them.
    """
    width, height = max(int(width), 160), max(int(height), 120)
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = _WHITE
    points = [(int(k), float(s)) for k, s in points if math.isfinite(s)]
    target = float(target) if target is not None and math.isfinite(target) else None
    left, right, top, bottom = 84, width - 16, 34, height - 40
    _text(img, left, 10, "best score", _INK, scale=2)
    _text(img, (left + right) // 2, height - 16, "evaluations", _INK, anchor="middle")
    if not points:
        _hline(img, left, right, bottom, _INK)
        _vline(img, left, top, bottom, _INK)
        _text(img, (left + right) // 2, (top + bottom) // 2 - 7, "no correct program yet", _INK, scale=2,
              anchor="middle")
        return _png(img)
    (ylo, yhi), near = score_axis([s for _, s in points], target)
    if target is not None and not near:  # far above the line: said, not drawn (it would flatten the line)
        _text(img, left + 4, top - 22, f"target {target:.6g} above", _ORANGE)
        target = None
    xhi = max(max(k for k, _ in points), 1)
    xlo = 0

    def px(v: float) -> float:
        return left + (v - xlo) / (xhi - xlo) * (right - left)

    def py(v: float) -> float:
        return bottom - (v - ylo) / (yhi - ylo) * (bottom - top)

    ticks, step = _ticks(ylo, yhi, count=5)
    for v in ticks:
        _hline(img, left, right, py(v), _GRID)
        _text(img, left - 6, int(py(v)) - 3, _tick_label(v, step), _INK, anchor="right")
    xt, xstep = _ticks(xlo, xhi, count=6, integer=True)
    for v in xt:
        _vline(img, px(v), bottom, bottom + 4, _INK)
        _text(img, int(px(v)), bottom + 8, _tick_label(v, xstep), _INK, anchor="middle")
    _hline(img, left, right, bottom, _INK)
    _vline(img, left, top, bottom, _INK)
    if target is not None:
        y = py(target)
        x = float(left)
        while x < right:
            _hline(img, x, min(x + 7, right), y, _ORANGE, thick=2)
            x += 12
        _text(img, right - 2, int(y) - 11, f"target {target:.6g}", _ORANGE, anchor="right")
    (k0, s0) = points[0]
    x_prev, y_prev = px(k0), py(s0)
    for k, s in points[1:]:
        x, y = px(k), py(s)
        _hline(img, x_prev, x, y_prev, _BLUE, thick=2)
        _vline(img, x, y_prev, y, _BLUE, thick=2)
        x_prev, y_prev = x, y
    _hline(img, x_prev, px(xhi), y_prev, _BLUE, thick=2)
    _text(img, right - 2, top - 22, f"best {points[-1][1]:.6g}", _BLUE, anchor="right")
    return _png(img)
