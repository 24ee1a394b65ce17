"""SVG drawing primitives shared by the static report and the web view: escaping, scores at full precision,
nice ticks, a rectangular plot with linear scales, legends. Everything returned is markup with every value
escaped, so it can be put into a page as it is."""

from __future__ import annotations

import html
import math
from typing import Any

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
BEST_COLOR = "#1f5fbf"
TARGET_COLOR = "#d9480f"
BAD_COLOR = "#c92a2a"
MUTED = "#8a8f98"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_score(value: float | None) -> str:
    """Full precision (the shortest text that reads back as the same float)."""
    return "none" if value is None else repr(float(value))


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)



def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * magnitude:
            return m * magnitude
    return 10.0 * magnitude


def ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> tuple[list[float], float]:
    step = _nice_step(hi - lo, count)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v = first + len(ticks) * step
    return ticks, step


def tick_label(v: float, step: float) -> str:
    """The shortest text that tells neighbouring ticks apart."""
    decimals = 0
    while decimals < 15 and not math.isclose(round(step, decimals), step, rel_tol=1e-9):
        decimals += 1
    if decimals <= 6 and abs(v) < 1e6:
        return f"{v:.{decimals}f}"
    if v == 0:
        return "0"
    digits = max(1, math.floor(math.log10(abs(v))) - math.floor(math.log10(step)) + 2)
    return f"{v:.{digits}g}"


def domain(values: list[float], pad: float = 0.06) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        half = abs(hi) * 0.05 or 0.5
        return lo - half, hi + half
    span = hi - lo
    return lo - pad * span, hi + pad * span


class Plot:
    """A rectangular plot area inside an SVG of the given size, with linear scales."""

    def __init__(self, width: int, height: int, xdom: tuple[float, float], ydom: tuple[float, float],
                 left: int = 78, right: int = 24, top: int = 34, bottom: int = 48):
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, width - right, top, height - bottom
        self.xdom, self.ydom = xdom, ydom
        self.parts: list[str] = []

    def x(self, v: float) -> float:
        lo, hi = self.xdom
        return self.left + (v - lo) / (hi - lo) * (self.right - self.left)

    def y(self, v: float) -> float:
        lo, hi = self.ydom
        return self.bottom - (v - lo) / (hi - lo) * (self.bottom - self.top)

    def add(self, part: str) -> None:
        self.parts.append(part)

    def axes(self, xlabel: str, ylabel: str, *, xinteger: bool = False, xticks: bool = True,
             yfmt: str = "{}") -> None:
        yt, ystep = ticks(*self.ydom, count=5)
        for v in yt:
            py = self.y(v)
            self.add(f'<line class="grid" x1="{self.left}" y1="{py:.1f}" x2="{self.right}" y2="{py:.1f}"/>')
            self.add(f'<text class="tick" x="{self.left - 6}" y="{py + 4:.1f}" text-anchor="end">'
                     f'{esc(yfmt.format(tick_label(v, ystep)))}</text>')
        if xticks:
            xt, xstep = ticks(*self.xdom, count=8, integer=xinteger)
            for v in xt:
                px = self.x(v)
                self.add(f'<line class="axis" x1="{px:.1f}" y1="{self.bottom}" x2="{px:.1f}" y2="{self.bottom + 5}"/>')
                self.add(f'<text class="tick" x="{px:.1f}" y="{self.bottom + 18}" text-anchor="middle">'
                         f'{esc(tick_label(v, xstep))}</text>')
        self.add(f'<line class="axis" x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}"/>')
        self.add(f'<line class="axis" x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}"/>')
        self.add(f'<text class="label" x="{(self.left + self.right) / 2:.1f}" y="{self.height - 8}" '
                 f'text-anchor="middle">{esc(xlabel)}</text>')
        cy = (self.top + self.bottom) / 2
        self.add(f'<text class="label" x="16" y="{cy:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {cy:.1f})">{esc(ylabel)}</text>')

    def svg(self, label: str) -> str:
        return svg(self.width, self.height, label, self.parts)


def svg(width: int, height: int, label: str, parts: list[str]) -> str:
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{esc(label)}">{"".join(parts)}</svg>')


def empty_svg(message: str, width: int = 900, height: int = 120) -> str:
    return svg(width, height, message, [
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" class="empty"/>',
        f'<text class="label" x="{width / 2}" y="{height / 2 + 5}" text-anchor="middle">{esc(message)}</text>'])


def legend(items: list[tuple[str, str, str]], x: float, y: float) -> list[str]:
    """items: (kind, color, text) with kind 'line', 'dash', 'dot' or 'box'; laid out left to right."""
    parts = []
    for kind, color, text in items:
        if kind == "line":
            parts.append(f'<line x1="{x}" y1="{y}" x2="{x + 18}" y2="{y}" stroke="{color}" stroke-width="2.5"/>')
        elif kind == "dash":
            parts.append(f'<line x1="{x}" y1="{y}" x2="{x + 18}" y2="{y}" stroke="{color}" stroke-width="2" '
                         f'stroke-dasharray="5 3"/>')
        elif kind == "dot":
            parts.append(f'<circle cx="{x + 9}" cy="{y}" r="3.5" fill="{color}"/>')
        else:
            parts.append(f'<rect x="{x + 3}" y="{y - 6}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text class="tick" x="{x + 24}" y="{y + 4}">{esc(text)}</text>')
        x += 24 + 7 * len(text) + 18
    return parts


def score_axis(best: list[float], target: float | None, pad: float = 0.08) -> tuple[tuple[float, float], bool]:
    """The score axis of a best-so-far line: the line's own range with a margin, so a gain of 1.61 -> 1.77 fills
    the plot instead of a sliver of 1.0 -> 2.7; the target is inside only when it is near (within the line's
    span of its top). Returns the domain and whether the target is in it."""
    lo, hi = min(best), max(best)
    near = target is not None and finite(target) and lo <= target <= hi + max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    return domain([lo, hi] + ([target] if near else []), pad), near
