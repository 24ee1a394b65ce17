"""The HTML of the web view. Pages that change while a run evolves (runs, a run, the genealogy) are shells the
script fills from the JSON API; a program and a diff are rendered here, whole. Everything taken from the
archive (code, feedback, output, descriptions: text written by untrusted candidates and models) goes through
`esc`; the only markup not built here is the task drawing, whose numbers are formatted by `server/drawings.py`.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from ...tools.program_view import DiffLine, ProgramPage
from ...tools.watch import ProgramRecord, RunRecord
from ..drawings import draw_solution
from ..svg import esc, fmt_score
from .session import PREFIX

MAX_TEXT = 200_000  # characters of a program's code, output or metrics shown on its page
STATUS_WORDS = {"evaluated": "evaluated", "failed": "failed", "pending": "waiting", "running": "running"}


def run_url(run_id: int) -> str:
    return f"{PREFIX}/runs/{run_id}"


def program_url(run_id: int, program_id: int) -> str:
    return f"{PREFIX}/runs/{run_id}/programs/{program_id}"


def diff_url(run_id: int, a: int, b: int, **extra: str) -> str:
    return f"{PREFIX}/runs/{run_id}/diff?{urlencode({'a': a, 'b': b, **extra})}"


def tree_url(run_id: int, root: int | None = None) -> str:
    return f"{PREFIX}/runs/{run_id}/tree" + (f"?root={root}" if root is not None else "")


def _a(href: str, text: Any, cls: str = "") -> str:
    attr = f' class="{esc(cls)}"' if cls else ""
    return f'<a href="{esc(href)}"{attr}>{esc(text)}</a>'


def page(title: str, kind: str, body: str, crumbs: list[tuple[str, str | None]], data: dict[str, Any] | None = None
         ) -> str:
    """The frame of every page: styles and the script from /ui/static, breadcrumbs, `data-*` for the script."""
    attrs = "".join(f' data-{esc(k)}="{esc(v)}"' for k, v in {"page": kind, "prefix": PREFIX, **(data or {})}.items())
    trail = " / ".join(_a(href, text) if href else f"<span>{esc(text)}</span>" for text, href in crumbs)
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
            f'initial-scale=1"><title>{esc(title)}</title>'
            f'<link rel="stylesheet" href="{PREFIX}/static/app.css">'
            f'<link rel="icon" href="{PREFIX}/static/icon.svg" type="image/svg+xml">'
            f'<script src="{PREFIX}/static/app.js" defer></script></head>'
            f'<body{attrs}><header class="top"><nav>{_a(PREFIX + "/", "evomcp")} / {trail}</nav>'
            f'<span id="live-status" class="live"></span></header><main>{body}</main></body></html>\n')


def runs_page() -> str:
    body = ('<h1>Runs</h1><p class="sub">Every run in the archive, refreshed while you watch.</p>'
            '<table class="data" id="runs"><thead><tr><th>run</th><th>task</th><th>status</th><th>progress</th>'
            '<th>best</th><th>cost</th><th>isolation</th><th>scores</th></tr></thead><tbody></tbody></table>'
            '<p id="runs-empty" class="sub" hidden>No runs yet: <code>evomcp run TASK</code> starts one.</p>')
    return page("evomcp runs", "runs", body, [("runs", None)])


def run_page(run: RunRecord) -> str:
    body = (f'<h1>Run {run.id}: {esc(run.name)}</h1><p class="sub">{esc(run.task)} '
            f'· {_a(tree_url(run.id), "genealogy tree")}</p>'
            '<dl class="facts" id="facts"></dl>'
            '<section><h2>Best score over evaluations</h2><div class="chart" id="chart-evals"></div>'
            '<p class="caption" id="caption-evals"></p></section>'
            '<section><h2>Best score over wall time</h2><div class="chart" id="chart-time"></div></section>'
            '<div class="cols"><section><h2>Best solution</h2><div id="best-drawing"></div></section>'
            '<section><h2>Islands</h2><table class="data" id="islands"></table></section></div>'
            '<section><h2>Operators and models</h2><p class="caption">Proposals each arm made and what became of '
            'them; the bandit\'s statistics where the built-in driver chose it (reward: 0 for no improvement, '
            '0.5 to 1 for one); steps that failed before a program was stored, with the newest reason.</p>'
            '<table class="data" id="arms"></table><h3>Patch types</h3><table class="data" id="patch-types"></table>'
            '<h3>Model calls</h3><table class="data" id="models"></table></section>'
            '<section id="cost-section"><h2>Cost</h2><p id="cost-text"></p><div class="chart" id="chart-cost"></div>'
            '</section><section><h2>Latest evaluations</h2><table class="data" id="recent"></table></section>')
    return page(f"evomcp run {run.id}", "run", body, [(f"run {run.id}", None)],
                {"run": run.id, "target": "" if run.target_score is None else repr(run.target_score)})


def tree_page(run: RunRecord, root: int | None, limit: int, first_generation: int | None = None) -> str:
    limits = " ".join(_a(f"{tree_url(run.id, root)}{'&' if root is not None else '?'}limit={n}", n,
                         "on" if n == limit else "") for n in (300, 1500, 5000))
    body = (f'<h1>Genealogy of run {run.id}</h1>'
            f'<p class="sub" id="tree-info"></p><p class="controls" id="tree-pages"></p>'
            f'<p class="controls">nodes at most: {limits}'
            + (f' · {_a(tree_url(run.id), "back to the whole tree")}' if root is not None else "") +
            '</p><p class="legend"><span class="key correct"></span>correct (colour: the rank of its score among '
            'those drawn, low to high <span class="ramp"></span>) <span class="key failed"></span>failed or '
            'incorrect <span class="key waiting"></span>waiting <span class="key migrated"></span>moved island '
            '(migration) <span class="key best"></span>best · <b>+N</b>: descendants left out (click to open) · '
            'a dotted stub on the left: the parent is in an earlier window of generations</p>'
            '<div id="tree" class="tree"></div>')
    return page(f"evomcp run {run.id}: tree", "tree", body,
                [(f"run {run.id}", run_url(run.id)), ("tree", None)],
                {"run": run.id, "root": "" if root is None else root, "limit": limit,
                 "from": "" if first_generation is None else first_generation})


def _facts(items: list[tuple[str, str]]) -> str:
    """Pre-escaped values."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _pre(text: str | None, cls: str = "") -> str:
    text = text or ""
    cut = f"\n… {len(text) - MAX_TEXT} more characters" if len(text) > MAX_TEXT else ""
    return f'<pre class="{cls}">{esc(text[:MAX_TEXT] + cut)}</pre>'


def code_block(code: str) -> str:
    """The program's lines, numbered; the EVOLVE-BLOCKs (the code evolution may change) highlighted."""
    lines, inside = [], False
    for line in code[:MAX_TEXT].splitlines():
        marker = "EVOLVE-BLOCK-START" in line or "EVOLVE-BLOCK-END" in line
        if "EVOLVE-BLOCK-START" in line:
            inside = True
        cls = "marker" if marker else "evolve" if inside else "fixed"
        if "EVOLVE-BLOCK-END" in line:
            inside = False
        lines.append(f'<li class="{cls}">{esc(line) or " "}</li>')
    return f'<ol class="code" id="code">{"".join(lines)}</ol>'


def diff_table(lines: list[DiffLine]) -> str:
    if not lines:
        return '<p class="sub">The two programs have the same code.</p>'
    rows = []
    sign = {"same": " ", "del": "-", "add": "+", "gap": "…"}
    for line in lines:
        rows.append(f'<tr class="{line.kind}"><td class="n">{line.a or ""}</td><td class="n">{line.b or ""}</td>'
                    f'<td class="s">{sign[line.kind]}</td><td class="t">{esc(line.text) or " "}</td></tr>')
    return f'<table class="diff" id="diff"><tbody>{"".join(rows)}</tbody></table>'


def _score_text(p: ProgramRecord | dict) -> str:
    get = p.get if isinstance(p, dict) else lambda k: getattr(p, k)
    if get("status") in ("pending", "running"):
        return STATUS_WORDS[get("status")]
    if get("status") == "failed":
        return "failed"
    return fmt_score(get("combined_score")) if get("correct") else "incorrect"


def drawing(run: RunRecord, p: ProgramRecord, whose: str = "This program's") -> str | None:
    if not p.correct:
        return None
    drawn = draw_solution(run.task, p.private_metrics, p.public_metrics, whose)
    if drawn is None:
        return None
    svg, caption = drawn
    return f'<figure class="drawing">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def has_drawing(run: RunRecord, p: ProgramRecord) -> bool:
    """Whether the task draws this program's solution (the run page then shows the best one's)."""
    return drawing_svg(run, p) is not None


def drawing_svg(run: RunRecord, p: ProgramRecord) -> str | None:
    """The drawing as an SVG document (the run page shows the best one as an image)."""
    drawn = draw_solution(run.task, p.private_metrics, p.public_metrics) if p.correct else None
    if drawn is None:
        return None
    return drawn[0].replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" '
                                   'font-size="12" ', 1)


def program_page(view: ProgramPage, diff: list[DiffLine] | None) -> str:
    run, p, parent = view.run, view.program, view.parent
    delta = ""
    if parent is not None and p.correct and parent.correct and p.combined_score is not None \
            and parent.combined_score is not None:
        d = p.combined_score - parent.combined_score
        delta = f' <span class="{"up" if d > 0 else "down" if d < 0 else "flat"}">(Δ {"+" if d > 0 else ""}' \
                f'{esc(fmt_score(d))} to the parent)</span>'
    made_by = esc(view.origin["operator"] or ("the seed" if p.parent_id is None else
                                              "an agent that named no operator" if view.origin["proposed"]
                                              else "not recorded"))
    calls = "; ".join(f'{esc(c["model"])} ({esc(c["purpose"])}, ${c["cost_usd"]:.6f}, {c["prompt_tokens"]}+'
                      f'{c["completion_tokens"]} tokens, {c["seconds"]:.1f} s)' for c in view.origin["calls"])
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.created_at))
    facts = [
        ("status", f'<span class="status {esc(p.status)}" id="program-status">{esc(STATUS_WORDS[p.status])}'
                   f'{" (correct)" if p.correct else " (incorrect)" if p.status == "evaluated" else ""}</span>'),
        ("score", f'<span id="program-score">{esc(fmt_score(p.combined_score))}</span>{delta}'),
        ("parent", _a(program_url(run.id, parent.id), f"#{parent.id}") + f" ({esc(_score_text(parent))})"
         if parent else "none (the seed)"),
        ("generation · island", f"{p.generation} · {p.island}"),
        ("made by", made_by + (f" · model calls: {calls}" if calls else "")),
        ("patch", esc(p.patch_type) + (f": {esc(p.description)}" if p.description else "")),
        ("cost", f"${p.cost_usd:.6f}" if p.cost_usd else "none"),
        ("evaluation", (f"{p.eval_seconds:.3f} s" if p.eval_seconds is not None else "not finished")
         + f" · created {esc(when)}"),
    ]
    links = [_a(tree_url(run.id, p.id), "tree from here")]
    if parent:
        links.append(_a(diff_url(run.id, parent.id, p.id), "diff with the parent"))
    if view.best_id and view.best_id != p.id:
        links += [_a(program_url(run.id, view.best_id), f"the best (#{view.best_id})"),
                  _a(diff_url(run.id, p.id, view.best_id), "diff with the best")]
    compare = (f'<form class="compare" method="get" action="{PREFIX}/runs/{run.id}/diff">'
               f'<input type="hidden" name="a" value="{p.id}"><label>diff with program # '
               f'<input name="b" type="number" min="1" required></label> <button type="submit">show</button></form>')
    parts = [f'<h1>Program #{p.id} <small>of run {run.id} ({esc(run.task)})</small></h1>',
             f'<p class="links">{" · ".join(links)}</p>', compare, _facts(facts)]
    if p.error:
        parts.append(f'<section><h2>Error</h2>{_pre(p.error, "error")}</section>')
    if p.text_feedback:
        parts.append(f'<section><h2>Feedback</h2>{_pre(p.text_feedback)}</section>')
    picture = drawing(run, p)
    if picture:
        parts.append(f"<section><h2>Solution</h2>{picture}</section>")
    if p.public_metrics:
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
                       for k, v in p.public_metrics.items())
        parts.append(f'<section><h2>Metrics</h2><table class="data" id="metrics"><tbody>{rows}</tbody></table>')
        if p.private_metrics:
            parts.append(f"<details><summary>private metrics (what the scorer saw)</summary>"
                         f"{_pre(json.dumps(p.private_metrics, indent=1))}</details>")
        parts.append("</section>")
    for title, text in (("Standard output (tail)", p.stdout_tail), ("Standard error (tail)", p.stderr_tail)):
        if text:
            parts.append(f"<section><h2>{title}</h2>{_pre(text, 'output')}</section>")
    if diff is not None and parent is not None:
        parts.append(f'<section><h2>Diff against the parent #{parent.id}</h2>'
                     f'<p class="caption">{_a(diff_url(run.id, parent.id, p.id, context="all"), "whole files")}'
                     f'</p>{diff_table(diff)}</section>')
    parts.append(f'<section><h2>Code</h2><p class="caption">The highlighted lines are the EVOLVE-BLOCKs, the '
                 f'code evolution may change.</p>{code_block(p.code)}</section>')
    parts.append(_children(view))
    return page(f"evomcp run {run.id}: program {p.id}", "program", "".join(parts),
                [(f"run {run.id}", run_url(run.id)), (f"program {p.id}", None)], {"run": run.id, "program": p.id})


def _children(view: ProgramPage) -> str:
    run, p = view.run, view.program
    if not view.children_total:
        return '<section><h2>Children</h2><p class="sub" id="children-none">None yet.</p></section>'
    rows = []
    for c in view.children:
        rows.append(f'<tr><td>{_a(program_url(run.id, c["id"]), "#" + str(c["id"]))}</td>'
                    f'<td>{esc(_score_text(c))}</td><td>{c["island"]}</td><td>{esc(c["patch_type"])}</td>'
                    f'<td>{esc((c["description"] or "")[:160])}</td>'
                    f'<td>{_a(diff_url(run.id, p.id, c["id"]), "diff")}</td></tr>')
    more = (f'<p class="caption">The best {len(view.children)} of {view.children_total}; '
            f'{_a(tree_url(run.id, p.id), "the tree from here")} shows them all.</p>'
            if view.children_total > len(view.children) else "")
    return (f'<section><h2>Children ({view.children_total})</h2><table class="data" id="children"><thead><tr>'
            f'<th>program</th><th>score</th><th>island</th><th>patch</th><th>description</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{more}</section>')


def diff_page(run: RunRecord, a: ProgramRecord, b: ProgramRecord, lines: list[DiffLine], whole: bool) -> str:
    added = sum(1 for line in lines if line.kind == "add")
    removed = sum(1 for line in lines if line.kind == "del")
    other = diff_url(run.id, a.id, b.id, **({} if whole else {"context": "all"}))
    body = (f'<h1>Diff of #{a.id} and #{b.id} <small>run {run.id}</small></h1>'
            f'<p class="sub">{_a(program_url(run.id, a.id), f"#{a.id}")} ({esc(_score_text(a))}) → '
            f'{_a(program_url(run.id, b.id), f"#{b.id}")} ({esc(_score_text(b))}): '
            f'<span class="down">−{removed}</span> <span class="up">+{added}</span> lines · '
            f'{_a(other, "only the changes" if whole else "whole files")} · '
            f'{_a(diff_url(run.id, b.id, a.id, **({"context": "all"} if whole else {})), "swap")}</p>'
            f'{diff_table(lines)}')
    return page(f"evomcp run {run.id}: diff {a.id} {b.id}", "diff", body,
                [(f"run {run.id}", run_url(run.id)), (f"diff #{a.id} → #{b.id}", None)])


def error_page(status: int, message: str) -> str:
    return page("evomcp: not found" if status == 404 else "evomcp", "error",
                f'<h1>{"Not found" if status == 404 else "Cannot show this"}</h1><p id="error">{esc(message)}</p>',
                [("error", None)])
