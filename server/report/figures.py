"""A self-contained HTML report of one run, and a PNG of its progress.

The page needs no network: every figure is inline SVG drawn here, the styles are inline
and the only script is a few lines that record errors (for headless checks). The PNG is
rasterised with numpy and written with zlib, so neither needs a plotting library.

    html = await build_report(archive, run_id)
    png = render_progress_png(await progress_points(archive, run_id), run.target_score)
"""

from __future__ import annotations

import math
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..store import Archive, ProgramRecord, RunRecord
from ..tools.trust import describe, run_contracts
from .drawings import draw_solution
from .svg import BAD_COLOR, BEST_COLOR, MUTED, PALETTE, TARGET_COLOR
from .svg import Plot as _Plot, domain as _domain, empty_svg as _empty_svg, esc as _e, finite as _finite
from .svg import fmt_score as _score, legend as _legend, score_axis, svg as _svg
from .svg import tick_label as _tick_label, ticks as _ticks

__all__ = ["build_report", "progress_points", "render_progress_png"]

EXTERNAL_ARM = "external agent"  # the arm of proposals that named no operator
LINEAGE_HEAD, LINEAGE_TAIL = 10, 30  # longer lineages show these many first and last steps in the drawing
MAX_ARM_BARS = 24


# data ---------------------------------------------------------------------------


@dataclass
class _Run:
    run: RunRecord
    programs: list[dict[str, Any]]  # every row, island copies of the seed included, id order
    distinct: list[dict[str, Any]]  # without island copies, id order
    evaluations: list[dict[str, Any]]  # distinct, evaluated or failed, in the order they finished
    progress: list[tuple[int, float]]  # as progress_points
    improvements: set[int]  # programs that raised the best score
    proposals: list[tuple[int, str]]  # (program id, arm), in proposal order
    best: ProgramRecord | None
    lineage: list[dict[str, Any]]
    seed: ProgramRecord | None  # the first program, when there is no best one to show
    contracts: list[str]  # the evaluation contracts that scored the run (tools/trust.py)


def _is_scored(p: dict[str, Any]) -> bool:
    return bool(p["correct"]) and _finite(p["combined_score"])


async def _get_run(archive: Archive, run_id: int) -> RunRecord:
    run = await archive.get_run(run_id)
    if run is None:
        raise ValueError(f"no run with id {run_id} in {archive.path}")
    return run


def _evaluations(programs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The programs without island copies of the seed, and those evaluated or failed in the order they finished."""
    seen: set[tuple[str, float]] = set()
    distinct = []
    for p in programs:  # seed_islands copies the seed row as it is, creation time included
        key = (p["code_hash"], p["created_at"])
        if key not in seen:
            seen.add(key)
            distinct.append(p)
    evaluations = sorted((p for p in distinct if p["status"] in ("evaluated", "failed")),
                         key=lambda p: (p["evaluated_at"] or p["created_at"], p["id"]))
    return distinct, evaluations


def _progress(evaluations: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], set[int]]:
    """The progress points, and the ids of the programs that raised the best score."""
    points, improvements = [], set()
    best = None
    for k, p in enumerate(evaluations, start=1):
        if _is_scored(p) and (best is None or p["combined_score"] > best):
            best = p["combined_score"]
            improvements.add(p["id"])
        if best is not None:
            points.append((k, best))
    return points, improvements


async def _load(archive: Archive, run_id: int) -> _Run:
    run = await _get_run(archive, run_id)
    programs = await archive.report_programs(run_id)
    distinct, evaluations = _evaluations(programs)
    progress, improvements = _progress(evaluations)
    proposals = []
    for event in await archive.run_events(run_id, "proposed"):
        data = event["data"] if isinstance(event["data"], dict) else {}
        if isinstance(data.get("program"), int):
            operator = data.get("operator")
            proposals.append((data["program"], str(operator) if operator else EXTERNAL_ARM))
    best_row = await archive.best_program(run_id)
    best = await archive.get_program(run_id, best_row["id"]) if best_row else None
    lineage = await archive.lineage(run_id, best.id) if best else []
    seed = await archive.get_program(run_id, distinct[0]["id"]) if best is None and distinct else None
    contracts = await run_contracts(archive, run)
    return _Run(run, programs, distinct, evaluations, progress, improvements, proposals, best, lineage, seed,
                contracts)


async def progress_points(archive: Archive, run_id: int) -> list[tuple[int, float]]:
    """(evaluation number, best score so far) for every evaluation from the first correct one on."""
    await _get_run(archive, run_id)
    _, evaluations = _evaluations(await archive.report_programs(run_id))
    return _progress(evaluations)[0]



def _figure(fig_id: str, title: str, body: str, caption: str) -> str:
    return (f'<figure id="{fig_id}"><h2>{_e(title)}</h2><div class="plot">{body}</div>'
            f'<figcaption>{caption}</figcaption></figure>')


# figures ----------------------------------------------------------------------------


def _fig_best_score(data: _Run) -> str:
    points = data.progress
    target = data.run.target_score if _finite(data.run.target_score) else None
    n = len(data.evaluations)
    if not points:
        why = "no evaluation yet" if n == 0 else f"none of the {n} evaluations produced a correct program"
        return _figure("fig-best-score", "Best score over evaluations", _empty_svg(why),
                       f"Best score so far after each evaluation: {_e(why)}.")
    scored = [(k, p) for k, p in enumerate(data.evaluations, start=1) if _is_scored(p)]
    ydom, near = score_axis([b for _, b in points], target)
    plot = _Plot(900, 380, (0, max(n, 1)), ydom)
    plot.axes("evaluations (in the order they finished)", "score", xinteger=True)
    many = len(scored) > 2000
    below = 0
    for k, p in scored:
        title = "" if many else f'<title>program {p["id"]}: {_e(_score(p["combined_score"]))}</title>'
        if p["combined_score"] < ydom[0]:  # far below the best: a mark on the axis, not a squashed plot
            below += 1
            plot.add(f'<path class="below" d="M{plot.x(k):.1f},{plot.bottom - 1}l-3,-5h6z">{title}</path>')
            continue
        plot.add(f'<circle class="dot" cx="{plot.x(k):.1f}" cy="{plot.y(p["combined_score"]):.1f}" r="2.6">'
                 f'{title}</circle>')
    bad = [k for k, p in enumerate(data.evaluations, start=1) if not _is_scored(p)]
    for k in bad:
        px = plot.x(k)
        plot.add(f'<line x1="{px:.1f}" y1="{plot.bottom - 7}" x2="{px:.1f}" y2="{plot.bottom}" '
                 f'stroke="{BAD_COLOR}" stroke-width="1.2"/>')
    if target is not None and near:
        py = plot.y(target)
        plot.add(f'<line x1="{plot.left}" y1="{py:.1f}" x2="{plot.right}" y2="{py:.1f}" stroke="{TARGET_COLOR}" '
                 f'stroke-width="1.6" stroke-dasharray="6 4"/>')
        plot.add(f'<text class="tick" x="{plot.right - 4}" y="{py - 6:.1f}" text-anchor="end" '
                 f'fill="{TARGET_COLOR}">target {_e(_score(target))}</text>')
    elif target is not None:
        plot.add(f'<text class="tick" x="{plot.right - 4}" y="{plot.top - 4}" text-anchor="end" '
                 f'fill="{TARGET_COLOR}">target {_e(_score(target))} is above this range</text>')
    k0, b0 = points[0]
    path = [f"M{plot.x(k0):.1f},{plot.y(b0):.1f}"]
    for k, b in points[1:]:
        path.append(f"H{plot.x(k):.1f}V{plot.y(b):.1f}")
    path.append(f"H{plot.x(n):.1f}")
    plot.add(f'<path d="{"".join(path)}" fill="none" stroke="{BEST_COLOR}" stroke-width="2.5"/>')
    legend = [("line", BEST_COLOR, "best so far"), ("dot", MUTED, "correct program")]
    if bad:
        legend.append(("box", BAD_COLOR, f"failed or incorrect ({len(bad)})"))
    if below:
        legend.append(("dot", MUTED, f"{below} below the axis (marked on it)"))
    if target is not None and near:
        legend.append(("dash", TARGET_COLOR, "best known (target)"))
    plot.parts += _legend(legend, plot.left, 16)
    first, last = points[0][1], points[-1][1]
    caption = (f"Best score after each of the {n} evaluations (step line), every correct program's score (dots)"
               f"{' and failed or incorrect ones (red ticks on the axis)' if bad else ''}. "
               f"From {_e(_score(first))} to {_e(_score(last))}; the score axis spans the best line's range"
               + (f" ({below} correct programs scored below it and are marked on the axis)" if below else ""))
    if target is not None:
        where = "the dashed line" if near else "above the plotted range"
        caption += f"; the best known score is {_e(_score(target))} ({where}), gap {_e(_score(target - last))}"
    return _figure("fig-best-score", "Best score over evaluations", plot.svg("best score over evaluations"),
                   caption + ".")


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q1), float(q2), float(q3)


def _fig_islands(data: _Run) -> str:
    done = [p for p in data.programs if p["status"] in ("evaluated", "failed")]
    islands = sorted({p["island"] for p in done})
    scored = [p for p in done if _is_scored(p)]
    if not scored:
        why = "no correct program yet"
        return _figure("fig-islands", "Scores per island", _empty_svg(why),
                       f"Distribution of the correct programs' scores on each island: {why}.")
    plot = _Plot(900, 360, (0, len(islands)), _domain([p["combined_score"] for p in scored]), bottom=62)
    plot.axes("", "score", xticks=False)
    width = (plot.right - plot.left) / len(islands)
    best_id = data.best.id if data.best else None
    for i, island in enumerate(islands):
        color = PALETTE[i % len(PALETTE)]
        members = [p for p in done if p["island"] == island]
        values = [p["combined_score"] for p in members if _is_scored(p)]
        cx = plot.left + (i + 0.5) * width
        if len(values) >= 2:
            q1, q2, q3 = _quartiles(values)
            bw = min(60.0, width * 0.45)
            plot.add(f'<line x1="{cx:.1f}" y1="{plot.y(min(values)):.1f}" x2="{cx:.1f}" '
                     f'y2="{plot.y(max(values)):.1f}" stroke="{color}" stroke-width="1.2"/>')
            plot.add(f'<rect x="{cx - bw / 2:.1f}" y="{plot.y(q3):.1f}" width="{bw:.1f}" '
                     f'height="{max(plot.y(q1) - plot.y(q3), 1):.1f}" fill="{color}" fill-opacity="0.18" '
                     f'stroke="{color}"/>')
            plot.add(f'<line x1="{cx - bw / 2:.1f}" y1="{plot.y(q2):.1f}" x2="{cx + bw / 2:.1f}" '
                     f'y2="{plot.y(q2):.1f}" stroke="{color}" stroke-width="2"/>')
        spread = min(70.0, width * 0.6)
        for p in members:
            if not _is_scored(p):
                continue
            jitter = ((p["id"] * 2654435761) % 1009 / 1008 - 0.5) * spread
            px, py = cx + jitter, plot.y(p["combined_score"])
            title = f'<title>program {p["id"]}: {_e(_score(p["combined_score"]))}</title>'
            if p["id"] == best_id:
                plot.add(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="6" fill="none" stroke="{BEST_COLOR}" '
                         f'stroke-width="2">{title}</circle>')
            plot.add(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}" fill-opacity="0.75">{title}</circle>')
        failed = len(members) - len(values)
        plot.add(f'<text class="label" x="{cx:.1f}" y="{plot.bottom + 20}" text-anchor="middle">island '
                 f'{_e(island)}</text>')
        note = f"{len(values)} correct" + (f", {failed} failed or incorrect" if failed else "")
        plot.add(f'<text class="tick" x="{cx:.1f}" y="{plot.bottom + 36}" text-anchor="middle">{_e(note)}</text>')
    caption = ("Scores of the correct programs on each island (points, jittered sideways; boxes show the "
               "quartiles and median, whiskers the range); the ringed point is the best program. Islands are "
               "where programs sit now, after migrations; the seed is counted on every island it was copied to.")
    return _figure("fig-islands", "Scores per island", plot.svg("scores per island"), caption)


def _fig_lineage(data: _Run) -> str:
    chain = data.lineage
    if not chain:
        why = "no best program yet"
        return _figure("fig-lineage", "Lineage of the best program", _empty_svg(why),
                       f"The best program's chain of ancestors: {why}.")
    rows: list[tuple[int, dict[str, Any], float | None] | None] = []
    previous = None
    for index, p in enumerate(chain):
        score = p["combined_score"] if _is_scored(p) else None
        delta = score - previous if score is not None and previous is not None else None
        rows.append((index, p, delta))
        if score is not None:
            previous = score
    shown: list[tuple[int, dict[str, Any], float | None] | None] = rows
    if len(rows) > LINEAGE_HEAD + LINEAGE_TAIL + 1:
        shown = rows[:LINEAGE_HEAD] + [None] + rows[-LINEAGE_TAIL:]
    step_h = 34
    width, height = 900, 24 + step_h * len(shown)
    parts = []
    node_x = 28
    parts.append(f'<line x1="{node_x}" y1="24" x2="{node_x}" y2="{height - step_h + 14}" stroke="{MUTED}" '
                 f'stroke-width="2"/>')
    for r, row in enumerate(shown):
        y = 24 + r * step_h
        if row is None:
            hidden = len(rows) - LINEAGE_HEAD - LINEAGE_TAIL
            parts.append(f'<text class="tick" x="{node_x + 22}" y="{y + 4}" font-style="italic">… {hidden} '
                         f'more steps (listed in the table below) …</text>')
            continue
        index, p, delta = row
        is_best = index == len(rows) - 1
        color = BEST_COLOR if is_best else (BAD_COLOR if not _is_scored(p) else "#495057")
        parts.append(f'<circle cx="{node_x}" cy="{y}" r="{8 if is_best else 6}" fill="{color}"/>')
        outcome = _score(p["combined_score"]) if _is_scored(p) else (
            "none (failed)" if p["status"] == "failed" else "none (incorrect)")
        label = f'#{p["id"]}  gen {p["generation"]}  island {p["island"]}  score {outcome}'
        parts.append(f'<text class="node" x="{node_x + 22}" y="{y + 4}">{_e(label)}</text>')
        if delta is not None:
            tone = "#2b8a3e" if delta > 0 else (BAD_COLOR if delta < 0 else MUTED)
            change = "0 (same score)" if delta == 0 else ("+" if delta > 0 else "") + _score(delta)
            parts.append(f'<text class="node" x="{node_x + 22 + 7.2 * len(label) + 14:.0f}" y="{y + 4}" '
                         f'fill="{tone}">Δ {_e(change)}</text>')
        what = p["patch_type"] + (f': {p["description"]}' if p["description"] else "")
        short = what if len(what) <= 110 else what[:107] + "..."
        parts.append(f'<text class="tick" x="{node_x + 22}" y="{y + 18}"><title>{_e(what)}</title>'
                     f'{_e(short)}</text>')
    table = ['<details><summary>every step of the lineage</summary><table class="data"><thead><tr>'
             '<th>step</th><th>program</th><th>generation</th><th>island</th><th>patch</th><th>score</th>'
             '<th>delta to parent</th><th>description</th></tr></thead><tbody>']
    for row in rows:
        assert row is not None
        index, p, delta = row
        table.append(f'<tr><td>{index}</td><td>{p["id"]}</td><td>{p["generation"]}</td><td>{p["island"]}</td>'
                     f'<td>{_e(p["patch_type"])}</td><td>{_e(_score(p["combined_score"]))}</td>'
                     f'<td>{_e("" if delta is None else _score(delta))}</td><td>{_e(p["description"] or "")}</td>'
                     f'</tr>')
    table.append("</tbody></table></details>")
    first, last = chain[0], chain[-1]
    total = (last["combined_score"] - first["combined_score"]
             if _is_scored(first) and _is_scored(last) else None)
    caption = (f"The best program (#{last['id']}) and its {len(chain) - 1} ancestors back to the seed, oldest "
               f"first; Δ is the change of score from the nearest scored ancestor")
    if total is not None:
        caption += f"; the whole chain gained {_e(_score(total))}"
    body = _svg(width, height, "lineage of the best program", parts) + "".join(table)
    return _figure("fig-lineage", "Lineage of the best program", body, caption + ".")


def _sizes():
    base = 1
    while True:
        for m in (1, 2, 5):
            yield base * m
        base *= 10


def _arm_counts(proposals: list[tuple[int, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, arm in proposals:
        counts[arm] = counts.get(arm, 0) + 1
    return counts


def _fig_arms(data: _Run) -> str:
    proposals = data.proposals
    counts = _arm_counts(proposals)
    if len(counts) < 2:  # one arm or none: the facts say which; a chart of identical bars would say nothing
        return ""
    arms = sorted(counts, key=lambda a: (-counts[a], a))
    colors = {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}
    size = next(s for s in _sizes() if s >= max(1, math.ceil(len(proposals) / MAX_ARM_BARS)))
    windows = [proposals[i:i + size] for i in range(0, len(proposals), size)]
    ymax = max(len(w) for w in windows)
    plot = _Plot(900, 360, (0, len(windows)), (0, ymax * 1.08), bottom=56)
    plot.axes(f"proposals, in windows of {size}", "proposals per window", xticks=False)
    bar = (plot.right - plot.left) / len(windows)
    label_every = max(1, math.ceil(len(windows) / 12))
    for w, window in enumerate(windows):
        x = plot.left + w * bar + bar * 0.12
        base = 0
        for arm in arms:
            c = sum(1 for _, a in window if a == arm)
            if not c:
                continue
            y_top, y_bottom = plot.y(base + c), plot.y(base)
            plot.add(f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{bar * 0.76:.1f}" height="{y_bottom - y_top:.1f}" '
                     f'fill="{colors[arm]}"><title>{_e(arm)}: {c} of proposals {w * size + 1}–'
                     f'{w * size + len(window)}</title></rect>')
            base += c
        if w % label_every == 0:
            text = f"{w * size + 1}" if size == 1 else f"{w * size + 1}–{w * size + len(window)}"
            plot.add(f'<text class="tick" x="{plot.left + (w + 0.5) * bar:.1f}" y="{plot.bottom + 16}" '
                     f'text-anchor="middle">{_e(text)}</text>')
    by_id = {p["id"]: p for p in data.programs}
    legend = []
    rows = []
    for arm in arms:
        ids = [i for i, a in proposals if a == arm]
        correct = sum(1 for i in ids if i in by_id and _is_scored(by_id[i]))
        better = sum(1 for i in ids if i in data.improvements)
        legend.append(("box", colors[arm], f"{arm} ({counts[arm]})"))
        rows.append(f'<tr><td><span class="swatch" style="background:{colors[arm]}"></span>{_e(arm)}</td>'
                    f'<td>{counts[arm]}</td><td>{correct}</td><td>{better}</td></tr>')
    plot.parts += _legend(legend, plot.left, 16)
    table = ('<table class="data"><thead><tr><th>arm</th><th>proposals</th><th>correct</th><th>new bests</th>'
             f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')
    caption = (f"How many of the {len(proposals)} proposals each operator or model (arm) made, per window of "
               f"{size} proposals in the order they were made (stacked bars); \"{EXTERNAL_ARM}\" is a client that "
               f"named no operator. The table counts the correct programs and the new best scores of each arm.")
    return _figure("fig-arms", "Operators and models used", plot.svg("proposals per arm") + table, caption)


def _fig_cost(data: _Run) -> str:
    programs = data.distinct
    if not any(_finite(p["cost_usd"]) and p["cost_usd"] > 0 for p in programs):
        return ""  # nothing was spent: the facts say so, and a flat line at $0 would say nothing more
    totals = []
    total = 0.0
    for p in programs:
        total += p["cost_usd"] if _finite(p["cost_usd"]) else 0.0
        totals.append(total)
    n = len(programs)
    plot = _Plot(900, 300, (0, n), (0, total * 1.06))
    plot.axes("programs, in creation order", "cumulative cost (USD)", xinteger=True, yfmt="${}")
    path = [f"M{plot.x(0):.1f},{plot.y(0):.1f}"]
    for k, t in enumerate(totals, start=1):
        path.append(f"H{plot.x(k):.1f}V{plot.y(t):.1f}")
    plot.add(f'<path d="{"".join(path)}" fill="none" stroke="{PALETTE[2]}" stroke-width="2.5"/>')
    caption = (f"Cumulative model cost over the {n} programs in the order they were created: "
               f"${total:.6f} in all, ${total / n:.6f} per program.")
    return _figure("fig-cost", "Cumulative cost", plot.svg("cumulative cost"), caption)


def _fig_solution(data: _Run) -> str:
    title = "Best solution"
    best = data.best
    if best is None:
        why = "no best program yet"
        return _figure("fig-solution", title, _empty_svg(why), f"A drawing of the best solution: {why}.")
    task, private, public = data.run.task, best.private_metrics, best.public_metrics
    drawn = draw_solution(task, private, public)
    if drawn is None:
        why = f"no drawing for task {task}: its best program's private metrics hold no solution this report draws"
        return _figure("fig-solution", title, _empty_svg(why), _e(why) + ".")
    svg, caption = drawn
    return _figure("fig-solution", title, svg, _e(caption))


# the page -------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif;
       color: #212529; background: #f1f3f5; margin: 0; }
main { max-width: 960px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 10px; }
.sub { color: #495057; margin: 0 0 16px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff;
           padding: 14px 18px; border-radius: 8px; margin: 0 0 20px; }
dl.facts dt { color: #495057; } dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
figure, section.code { background: #fff; border-radius: 8px; padding: 16px 18px; margin: 0 0 20px; }
.plot { overflow-x: auto; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-family: inherit; font-size: 12px; fill: #343a40; }
svg text.label { font-size: 13px; }
svg text.node { font-size: 12.5px; font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; }
svg .grid { stroke: #e9ecef; stroke-width: 1; }
svg .axis { stroke: #495057; stroke-width: 1; }
svg .dot { fill: #8a8f98; fill-opacity: 0.55; }
svg .below { fill: #8a8f98; }
svg .empty { fill: #f8f9fa; stroke: #dee2e6; stroke-dasharray: 4 3; }
figcaption { color: #495057; font-size: 13.5px; margin-top: 8px; }
table.data { border-collapse: collapse; font-size: 13px; margin-top: 10px; font-variant-numeric: tabular-nums; }
table.data th, table.data td { border-bottom: 1px solid #e9ecef; padding: 3px 10px 3px 0; text-align: left;
                               vertical-align: top; }
details { margin-top: 8px; font-size: 13px; } details table.data { width: 100%; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
pre { background: #f8f9fa; border: 1px solid #e9ecef; border-radius: 6px; padding: 12px; overflow-x: auto;
      font: 12.5px/1.4 "DejaVu Sans Mono", "Liberation Mono", ui-monospace, monospace; margin: 0; }
"""

_HEAD_SCRIPT = """
window.onerror = function (message, source, line, column) {
  var box = document.getElementById("report-errors");
  if (box) { box.textContent += message + " (line " + line + ", column " + column + ")\\n"; }
};
"""

_TAIL_SCRIPT = """
(function () {
  var figures = document.querySelectorAll("figure[id^='fig-']");
  var drawn = 0;
  figures.forEach(function (f) { if (f.querySelector("svg") && f.querySelector("figcaption")) { drawn++; } });
  document.body.dataset.figures = String(figures.length);
  document.body.dataset.drawn = String(drawn);
  document.body.dataset.ok = "1";
})();
"""


def _facts(data: _Run) -> str:
    run = data.run
    evaluated = len(data.evaluations)
    statuses: dict[str, int] = {}
    for p in data.distinct:
        statuses[p["status"]] = statuses.get(p["status"], 0) + 1
    correct = sum(1 for p in data.evaluations if _is_scored(p))
    best = data.best
    best_score = best.combined_score if best else None
    target = run.target_score
    items = [
        ("run", f"{run.id}"),
        ("name", run.name),
        ("task", run.task if run.task_path == run.task else f"{run.task} ({run.task_path})"),
        ("status", run.status),
        *([("why", run.status_reason)] if run.status_reason else []),
        ("scores", describe(data.contracts)),
        ("evaluations", f"{evaluated} ({correct} correct, {evaluated - correct} failed or incorrect"
                        + (f", {statuses.get('pending', 0) + statuses.get('running', 0)} waiting"
                           if statuses.get("pending") or statuses.get("running") else "") + ")"),
        ("best score", f"{_score(best_score)}" + (f" (program {best.id}, generation {best.generation}, "
                                                  f"island {best.island})" if best else "")),
        ("target", "none" if target is None else _score(target)),
    ]
    if best_score is not None and target is not None:
        items.append(("gap to target", _score(target - best_score)))
    arms = _arm_counts(data.proposals)
    items.append(("operators", ", ".join(f"{arm} ({n} proposal{'s' if n != 1 else ''})"
                                         for arm, n in sorted(arms.items(), key=lambda a: (-a[1], a[0])))
                  or "none yet (only the seed)"))
    total_cost = sum(p["cost_usd"] for p in data.distinct if _finite(p["cost_usd"]))
    items.append(("cost", f"${total_cost:.6f}" if total_cost else "none recorded"))
    ends = [p["evaluated_at"] for p in data.distinct if p["evaluated_at"]]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
    items.append(("started", started + (f", last evaluation {max(ends) - run.created_at:.1f} s later"
                                        if ends else "")))
    body = "".join(f'<dt>{_e(k)}</dt><dd id="fact-{_e(k.replace(" ", "-"))}">{_e(v)}</dd>' for k, v in items)
    return f'<dl class="facts">{body}</dl>'


def _code(data: _Run) -> str:
    best = data.best
    if best is None:
        seed = data.seed
        why = ""
        if seed is not None and (seed.error or seed.text_feedback):
            why = (f"<p>The first program (#{seed.id}) is {_e(seed.status)}"
                   f"{'' if seed.status != 'evaluated' else ' but incorrect'}:</p>"
                   f'<pre id="seed-error">{_e(seed.error or seed.text_feedback)}</pre>')
        return ('<section class="code" id="best-code-section"><h2>Best program</h2>'
                f'<p>No correct program yet.</p>{why}</section>')
    metrics = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in best.public_metrics.items())
    table = f'<table class="data"><tbody>{metrics}</tbody></table>' if metrics else ""
    feedback = f"<p>{_e(best.text_feedback)}</p>" if best.text_feedback else ""
    return (f'<section class="code" id="best-code-section"><h2>Best program: #{best.id}, score '
            f'{_e(_score(best.combined_score))}</h2>{feedback}{table}'
            f'<pre id="best-code"><code>{_e(best.code)}</code></pre></section>')


async def build_report(archive: Archive, run_id: int) -> str:
    """The whole report of a run as one self-contained HTML page (inline SVG, no network)."""
    data = await _load(archive, run_id)
    run = data.run
    figures = [_fig_best_score(data), _fig_islands(data), _fig_lineage(data), _fig_arms(data), _fig_cost(data),
               _fig_solution(data)]  # the operators' and the cost's only where they say something
    title = f"evomcp run {run.id}: {run.name}"
    generated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_HEAD_SCRIPT}</script></head>"
        f'<body data-ok="0"><main>'
        f"<h1>{_e(title)}</h1>"
        f'<p class="sub">Report generated {_e(generated)} from {_e(archive.path.name)}.</p>'
        f"{_facts(data)}{''.join(figures)}{_code(data)}"
        f'<pre id="report-errors" hidden></pre>'
        f"</main><script>{_TAIL_SCRIPT}</script></body></html>\n"
    )


# PNG ------------------------------------------------------------------------------

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
