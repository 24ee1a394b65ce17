"""The HTML report of a run and the progress PNG (evomcp.server.report)."""

import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest

from conftest import DATA
from evomcp.server.report import build_report, render_progress_png
from evomcp.store import Archive, EvaluationResult
from evomcp.tools import runs, steps
from evomcp.tools.errors import EvoError
from evomcp.tools.history import progress_points
from evomcp.tools.perturb import perturb
from evomcp.tools.workspace import open_workspace

FIGURES = ("fig-best-score", "fig-islands", "fig-lineage", "fig-arms", "fig-cost", "fig-solution")
ALWAYS = ("fig-best-score", "fig-islands", "fig-lineage", "fig-solution")  # the others only where they say something
ARMS = ("perturb", "model-a", None)  # None: an external agent that names no operator


class Page(HTMLParser):
    """Ids, figure contents, external references and the text of <pre id="best-code">."""

    def __init__(self):
        super().__init__()
        self.ids: list[str] = []
        self.stack: list[str] = []
        self.figures: dict[str, set[str]] = {}
        self.figure: str | None = None
        self.external: list[str] = []
        self.code: list[str] | None = None
        self.in_code = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for name in ("src", "href"):
            if name in attrs:
                self.external.append(attrs[name])
        if tag == "link":
            self.external.append(str(attrs))
        if tag == "figure":
            self.figure = attrs.get("id")
            self.figures[self.figure] = set()
        elif self.figure is not None:
            self.figures[self.figure].add(tag)
        if tag == "pre" and attrs.get("id") == "best-code":
            self.in_code, self.code = True, []

    def handle_endtag(self, tag):
        if tag == "figure":
            self.figure = None
        if tag == "pre":
            self.in_code = False

    def handle_data(self, data):
        if self.in_code:
            self.code.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def check_structure(html: str, figures=FIGURES) -> Page:
    page = parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert set(page.figures) == set(figures), sorted(page.figures)
    for fig in figures:
        assert fig in page.figures, fig
        assert {"svg", "figcaption"} <= page.figures[fig], (fig, page.figures[fig])
    assert page.external == [], f"the page must not load anything: {page.external}"
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org", "")
    return page


PROPOSALS = 10
MARGIN = re.compile(r"radii \* \(1 - [^)]*\)")  # the seed's `return radii * (1 - 1e-9)`


def new_change(code: str, rng: np.random.Generator, step: int) -> tuple[str, str]:
    """A change of `code` that no earlier step can have made: `perturb`'s, with the radii's safety margin set to
    this step's own value. `perturb` alone may change nothing (it leaves 0 and 1 alone, other ints half the time)
    or repeat an earlier program exactly, which the archive refuses: fewer programs than proposals are stored."""
    change = perturb(code, rng)
    code, description = change if change is not None else (code, "perturb: nothing")
    margin = f"{step + 2}e-9"  # the seed's is 1e-9
    code, found = MARGIN.subn(f"radii * (1 - {margin})", code)
    assert found == 1, "the circle_packing seed no longer ends with `return radii * (1 - 1e-9)`"
    return code, f"{description}, margin {margin}"


@pytest.fixture(scope="module")
def perturbed_run(tmp_path_factory):
    """A real circle_packing_26 run: the seed and perturbations by three arms, one arm with a cost."""
    import anyio

    tmp = tmp_path_factory.mktemp("report")

    async def build():
        async with open_workspace(tmp / "a.db", slots=2) as ws:
            status = await runs.start_run(ws, "circle_packing_26", config={"novelty": False, "seed": 3})
            run_id = status.run.run_id
            ws.rng = np.random.default_rng(5)  # the same parents and perturbations every time
            for step in range(PROPOSALS):  # each stored, or propose_candidate raises why not
                sampled = await steps.sample_parent(ws, run_id)
                code, description = new_change(sampled.parent.code, ws.rng, step)
                arm = ARMS[step % len(ARMS)]
                await steps.propose_candidate(ws, run_id, sampled.parent.id, code=code, patch_type="full",
                                              description=description, ticket=sampled.ticket, operator=arm,
                                              cost_usd=0.002 if arm == "model-a" else 0.0)
            html = await build_report(ws, run_id, ws.archive.path.name)
            best_row = await ws.archive.best_program(run_id)
            best = await ws.archive.get_program(run_id, best_row["id"])
            points = await progress_points(ws, run_id)
            status = await runs.get_run_status(ws, run_id)
            return html, best, points, status, PROPOSALS

    html, best, points, status, proposed = anyio.run(build)
    path = tmp / "report.html"
    path.write_text(html)
    return {"html": html, "best": best, "points": points, "status": status, "proposed": proposed, "path": path,
            "tmp": tmp}


def test_report_structure(perturbed_run):
    html, best = perturbed_run["html"], perturbed_run["best"]
    page = check_structure(html)
    assert repr(best.combined_score) in html  # full precision
    assert repr(2.6359830849) in html  # the target of circle_packing_26
    assert "".join(page.code) == best.code  # the code, escaped and read back exactly
    assert "if radii[i] + radii[j] &gt; d:" in html and "if radii[i] + radii[j] > d:" not in html
    # the drawing holds one circle per radius of the best packing
    solution = html[html.index('id="fig-solution"'):]
    solution = solution[:solution.index("</figure>")]
    assert solution.count("<circle") == len(best.private_metrics["radii"]) == 26
    # every arm appears with its count, the external agent under its own name
    arms = html[html.index('id="fig-arms"'):]
    assert "perturb" in arms and "model-a" in arms and "external agent" in arms
    # the lineage ends at the best program and starts at the seed
    lineage = html[html.index('id="fig-lineage"'):]
    assert f"#{best.id} " in lineage and "seed: initial program" in lineage
    assert "$0.0" in html[html.index('id="fig-cost"'):]


def test_progress_points_are_the_best_so_far(perturbed_run):
    points, best = perturbed_run["points"], perturbed_run["best"]
    assert points[0][0] == 1 and points[-1][1] == best.combined_score
    ks = [k for k, _ in points]
    assert ks == sorted(ks) and len(set(ks)) == len(ks)
    assert all(b1 <= b2 for (_, b1), (_, b2) in zip(points, points[1:]))
    # the seed's copy on island 1 is not a second evaluation
    assert len(points) == perturbed_run["proposed"] + 1


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (still filtered) scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), kind
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", payload[:10])
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + length
    assert width is not None and kind == b"IEND"
    return width, height, zlib.decompress(idat)


def test_progress_png():
    points = [(1, 1.2), (2, 1.2), (5, 1.45), (9, 1.5), (14, 1.61)]
    data = render_progress_png(points, 2.0, width=500, height=300)
    width, height, raw = decode_png(data)
    assert (width, height) == (500, 300)
    assert len(raw) == height * (1 + 3 * width)
    rows = [raw[r * (1 + 3 * width):(r + 1) * (1 + 3 * width)] for r in range(height)]
    assert {row[0] for row in rows} == {0}  # filter type none: the bytes are the pixels
    pixels = {row[1 + 3 * i:4 + 3 * i] for row in rows for i in range(width)}
    assert len(pixels) >= 4  # background, ink, grid, line and target colours at least
    assert bytes((31, 95, 191)) in pixels and bytes((217, 72, 15)) in pixels  # best line and target line
    for empty in ([], [(1, float("nan"))]):
        w, h, raw = decode_png(render_progress_png(empty, None))
        assert (w, h) == (640, 360) and len(set(raw)) > 2


async def test_report_when_the_seed_failed_or_is_incorrect(tmp_path):
    bad = tmp_path / "bad_task"
    bad.mkdir()
    (bad / "initial.py").write_text("# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n")
    (bad / "evaluate.py").write_text("raise ImportError('broken evaluator')\ndef evaluate(p):\n    return {}\n")
    async with open_workspace(tmp_path / "b.db", slots=1) as ws:
        with pytest.raises(EvoError, match="initial program failed"):
            await runs.start_run(ws, str(bad))
        await runs.start_run(ws, str(DATA / "broken_seed"))  # evaluated, but judged incorrect
        failed, incorrect = (await runs.list_runs(ws)).runs
        pages = [await build_report(ws, run.run_id, ws.archive.path.name) for run in (failed, incorrect)]
    for html, status, why in zip(pages, ("failed", "running"), ("broken evaluator", "must not be negative")):
        check_structure(html, ALWAYS)  # no proposal, no cost: no operators' chart, no cost chart
        assert why in html[html.index('id="seed-error"'):]
        assert "none of the 1 evaluations produced a correct program" in html
        assert '<dd id="fact-best-score">none</dd>' in html and f'<dd id="fact-status">{status}</dd>' in html
        assert "No correct program yet." in html and 'id="best-code"' not in html


async def test_report_of_an_empty_run_and_a_task_directory(tmp_path):
    archive = await Archive.open(tmp_path / "c.db")
    try:
        run = await archive.create_run("empty", "my_task", "/somewhere/my_task", {}, None)
        html = await report(archive, run.id)
        check_structure(html, ALWAYS)
        assert '<dd id="fact-target">none</dd>' in html and "no evaluation yet" in html
        with pytest.raises(ValueError, match="no run with id 99"):
            await report(archive, 99)
    finally:
        await archive.close()


async def report(archive: Archive, run_id: int) -> str:
    """The report of a run of an archive the test writes itself, read as `evomcp report` reads it."""
    async with open_workspace(archive.path, reset=False) as ws:
        return await build_report(ws, run_id, archive.path.name)


async def add(archive, run_id, parent, score, private=None, public=None, cost=0.0, island=0, generation=0,
              operator=None):
    program = await archive.insert_program(
        run_id=run_id, parent_id=parent, island=island, generation=generation, code=f"x = {score!r}  # <&>\n",
        code_hash=f"h{score!r}-{parent}", diff=None, patch_type="diff", description=f"step to {score}",
        cost_usd=cost, operator=operator)
    await archive.save_result(program.id, EvaluationResult(
        status="evaluated" if score is not None else "failed", correct=score is not None, combined_score=score,
        private_metrics=private or {}, public_metrics=public or {}))
    return program.id


@pytest.mark.parametrize("task, private, public, marks", [
    ("heilbronn_triangle_11", {"points": [[0.1, 0.05], [1.0, 0.1], [0.7, 0.9], [0.5, 0.3]]},
     {"smallest_triangle": [0, 1, 3]}, ("<polygon", "smallest")),
    ("min_max_distance_16", {"points": [[0, 0], [1, 0], [0.5, 0.8], [2, 1]]},
     {"closest_pair": [0, 1], "farthest_pair": [0, 3]}, ("closest pair", "farthest pair")),
    ("autocorrelation_first", {"heights": [1.0, 0.0, 2.5, 0.7]}, {}, ("step function",)),
    ("circle_packing_26", {"centers": "not an array"}, {}, ("no drawing",)),
])
async def test_long_lineages_costs_and_other_drawings(tmp_path, task, private, public, marks):
    archive = await Archive.open(tmp_path / "d.db")
    try:
        run = await archive.create_run("synthetic", task, task, {}, 1.0)
        parent = None
        for generation in range(60):  # a lineage longer than the drawing shows
            score = None if generation % 17 == 5 else 0.01 * generation
            parent = await add(archive, run.id, parent, score, cost=0.25, island=generation % 3,
                               generation=generation, private=private if generation == 59 else None,
                               public=public if generation == 59 else None,
                               operator=["gpt-x", "perturb"][generation % 2])
        html = await report(archive, run.id)
    finally:
        await archive.close()
    check_structure(html)
    assert repr(0.01 * 59) in html  # the best score, at full precision
    for mark in marks:
        assert mark in html, mark
    assert "more steps (listed in the table below)" in html
    assert "$15.000000 in all" in html
    assert f"x = {0.01 * 59!r}  # &lt;&amp;&gt;" in html


def chromium_command(browser, profile, *args):
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", *args]


def test_report_renders_in_headless_chromium(perturbed_run):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    tmp, path = perturbed_run["tmp"], perturbed_run["path"]
    url = path.resolve().as_uri()
    dom = subprocess.run(chromium_command(browser, tmp / "profile", "--enable-logging=stderr", "--v=0",
                                          "--dump-dom", url),
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    assert 'data-ok="1"' in body, body  # the page's script ran to its end
    assert f'data-figures="{len(FIGURES)}"' in body and f'data-drawn="{len(FIGURES)}"' in body, body
    errors = re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom.stdout, re.S).group(1)
    assert errors == "", errors
    for fig in FIGURES:
        assert f'<figure id="{fig}">' in dom.stdout

    shot = tmp / "report.png"
    result = subprocess.run(chromium_command(browser, tmp / "profile", f"--screenshot={shot}",
                                             "--window-size=1200,3000", url),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    width, height, raw = decode_png(shot.read_bytes())
    assert (width, height) == (1200, 3000)
    assert len(set(raw)) > 64 and len(shot.read_bytes()) > 50_000  # far from a blank page


async def test_one_arm_and_no_cost_leave_out_their_charts_and_the_axis_shows_the_change(tmp_path):
    """A perturb-only run: no operators' chart of identical bars, no flat $0 line, and a best-score axis fitted
    to the best line (1.61 -> 1.77), with the far target (2.635) said instead of squashing the line."""
    archive = await Archive.open(tmp_path / "e.db")
    try:
        run = await archive.create_run("one arm", "circle_packing_26", "circle_packing_26", {}, 2.635)
        parent = await add(archive, run.id, None, 1.61)
        for score in (1.0, 1.65, None, 1.7, 1.77):  # one far below, one failure
            await add(archive, run.id, parent, score, generation=1, operator="perturb")
        html = await report(archive, run.id)
    finally:
        await archive.close()
    check_structure(html, ALWAYS)
    assert '<dd id="fact-operators">perturb (5 proposals)</dd>' in html
    assert '<dd id="fact-cost">none recorded</dd>' in html
    figure = html[html.index('id="fig-best-score"'):]
    figure = figure[:figure.index("</figure>")]
    ticks = [float(v) for v in re.findall(r'<text class="tick" x="[\d.]+" y="[\d.]+" text-anchor="end">([\d.]+)</text>',
                                           figure)]
    assert ticks and 1.6 <= min(ticks) and max(ticks) <= 1.8, ticks  # not 1.0 .. 2.7
    assert "target 2.635 is above this range" in figure
    assert "1 below the axis" in figure and figure.count('class="below"') == 1
