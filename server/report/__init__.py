"""A self-contained HTML report of one run, and a PNG of its progress.

The page needs no network: every figure is inline SVG, the styles are inline and the only script is a few lines
that record errors (for headless checks). The PNG is rasterised with numpy and written with zlib, so neither
needs a plotting library.

    html = await build_report(ws, run_id, source)  # a read-only workspace will do; source: the archive's name
    png = render_progress_png(await history.progress_points(ws, run_id), run.target_score)

What the report shows is read by tools/history.py; figures.py draws the charts, page.py writes the page around
them and png.py rasterises the progress PNG.
"""

from __future__ import annotations

from .page import build_report
from .png import render_progress_png

__all__ = ["build_report", "render_progress_png"]
