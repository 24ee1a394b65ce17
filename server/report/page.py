"""The report's HTML page: its inline styles, the two small scripts that record errors and count the figures
drawn (for headless checks), the facts of the run, the best program's code, and `build_report` that puts them
together with the figures into one self-contained page (no network).
"""

from __future__ import annotations

import time

from ...tools.history import RunData, arm_counts, is_scored, load
from ...tools.trust import describe
from ...tools.workspace import Workspace
from ..svg import esc as _e
from ..svg import fmt_score as _score
from .figures import figures

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


def _facts(data: RunData) -> str:
    run = data.run
    evaluated = len(data.evaluations)
    statuses: dict[str, int] = {}
    for p in data.programs:
        statuses[p["status"]] = statuses.get(p["status"], 0) + 1
    correct = sum(1 for p in data.evaluations if is_scored(p))
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
    arms = arm_counts(data.proposals)
    items.append(("operators", ", ".join(f"{arm} ({n} proposal{'s' if n != 1 else ''})"
                                         for arm, n in sorted(arms.items(), key=lambda a: (-a[1], a[0])))
                  or "none yet (only the seed)"))
    items.append(("cost", f"${data.spent_usd:.6f}" if data.spent_usd else "none recorded"))
    ends = [p["evaluated_at"] for p in data.programs if p["evaluated_at"]]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
    items.append(("started", started + (f", last evaluation {max(ends) - run.created_at:.1f} s later"
                                        if ends else "")))
    body = "".join(f'<dt>{_e(k)}</dt><dd id="fact-{_e(k.replace(" ", "-"))}">{_e(v)}</dd>' for k, v in items)
    return f'<dl class="facts">{body}</dl>'


def _code(data: RunData) -> str:
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


async def build_report(ws: Workspace, run_id: int, source: str) -> str:
    """The whole report of a run as one self-contained HTML page (inline SVG, no network); `source` names the
    archive in its footer. ValueError if the archive has no such run."""
    data = await load(ws, run_id)
    run = data.run
    title = f"evomcp run {run.id}: {run.name}"
    generated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_HEAD_SCRIPT}</script></head>"
        f'<body data-ok="0"><main>'
        f"<h1>{_e(title)}</h1>"
        f'<p class="sub">Report generated {_e(generated)} from {_e(source)}.</p>'
        f"{_facts(data)}{''.join(figures(data))}{_code(data)}"
        f'<pre id="report-errors" hidden></pre>'
        f"</main><script>{_TAIL_SCRIPT}</script></body></html>\n"
    )
