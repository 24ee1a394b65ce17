"""The figures of a run's report: inline SVG charts of the best score over evaluations, the scores per island, the
best program's lineage, the proposals per operator, the cumulative cost and a drawing of the best solution.

Each takes the loaded run (tools/history.py) and returns one <figure> with its caption, or "" where a chart would
say nothing the facts do not (one operator only, nothing spent). Plots are built from server/svg.py's primitives
and the solution drawings come from server/drawings.py, both shared with the web view.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...tools.history import EXTERNAL_ARM, RunData, arm_counts, is_scored
from ..drawings import draw_solution
from ..svg import BAD_COLOR, BEST_COLOR, MUTED, PALETTE, TARGET_COLOR, score_axis
from ..svg import Plot as _Plot
from ..svg import domain as _domain
from ..svg import empty_svg as _empty_svg
from ..svg import esc as _e
from ..svg import finite as _finite
from ..svg import fmt_score as _score
from ..svg import legend as _legend
from ..svg import svg as _svg

LINEAGE_HEAD, LINEAGE_TAIL = 10, 30  # longer lineages show these many first and last steps in the drawing
MAX_ARM_BARS = 24


def figures(data: RunData) -> list[str]:
    """Every figure of the report, in page order."""
    return [_fig_best_score(data), _fig_islands(data), _fig_lineage(data), _fig_arms(data), _fig_cost(data),
            _fig_solution(data)]  # the operators' and the cost's only where they say something


def _figure(fig_id: str, title: str, body: str, caption: str) -> str:
    return (f'<figure id="{fig_id}"><h2>{_e(title)}</h2><div class="plot">{body}</div>'
            f'<figcaption>{caption}</figcaption></figure>')


def _fig_best_score(data: RunData) -> str:
    points = data.progress
    target = data.run.target_score if _finite(data.run.target_score) else None
    n = len(data.evaluations)
    if not points:
        why = "no evaluation yet" if n == 0 else f"none of the {n} evaluations produced a correct program"
        return _figure("fig-best-score", "Best score over evaluations", _empty_svg(why),
                       f"Best score so far after each evaluation: {_e(why)}.")
    scored = [(k, p) for k, p in enumerate(data.evaluations, start=1) if is_scored(p)]
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
    bad = [k for k, p in enumerate(data.evaluations, start=1) if not is_scored(p)]
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


def _fig_islands(data: RunData) -> str:
    done = [p for p in data.programs if p["status"] in ("evaluated", "failed")]
    islands = sorted({island for p in done for island in p["islands"]})
    scored = [p for p in done if is_scored(p)]
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
        members = [p for p in done if island in p["islands"]]
        values = [p["combined_score"] for p in members if is_scored(p)]
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
            if not is_scored(p):
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
               "where programs sit now, after migrations; the seed is a member of every island a migration has not moved "
               "it off.")
    return _figure("fig-islands", "Scores per island", plot.svg("scores per island"), caption)


def _fig_lineage(data: RunData) -> str:
    chain = data.lineage
    if not chain:
        why = "no best program yet"
        return _figure("fig-lineage", "Lineage of the best program", _empty_svg(why),
                       f"The best program's chain of ancestors: {why}.")
    rows: list[tuple[int, dict[str, Any], float | None] | None] = []
    previous = None
    for index, p in enumerate(chain):
        score = p["combined_score"] if is_scored(p) else None
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
        color = BEST_COLOR if is_best else (BAD_COLOR if not is_scored(p) else "#495057")
        parts.append(f'<circle cx="{node_x}" cy="{y}" r="{8 if is_best else 6}" fill="{color}"/>')
        outcome = _score(p["combined_score"]) if is_scored(p) else (
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
             if is_scored(first) and is_scored(last) else None)
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


def _fig_arms(data: RunData) -> str:
    proposals = data.proposals
    counts = arm_counts(proposals)
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
        correct = sum(1 for i in ids if i in by_id and is_scored(by_id[i]))
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


def _fig_cost(data: RunData) -> str:
    programs = data.programs
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


def _fig_solution(data: RunData) -> str:
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
