"""The mutation brief: everything a model or agent needs to write one good change."""

from __future__ import annotations

import json
from typing import Any

from .patches import DIFF_FORMAT


def fmt_score(score: float | None) -> str:
    """Full precision: on hard tasks gains of 1e-4 and less matter."""
    return "none (not valid)" if score is None else repr(float(score))


def fmt_delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    return f"{a - b:+.10g}"


def _metrics(metrics: dict[str, Any]) -> str:
    text = json.dumps(metrics, indent=None, default=str)
    return text if len(text) <= 1500 else text[:1500] + " ..."


def build_brief(
    *,
    task_name: str,
    description: str,
    language: str,
    parent: Any,
    best_score: float | None,
    inspirations: list[Any],
    failures: list[dict[str, Any]],
    parent_delta_base: float | None = None,
    mode: str = "improve",
    patch_type: str = "diff",
    recommendations: str | None = None,
) -> str:
    out = [f"# Task: {task_name}", description.strip(), ""]
    if mode == "fix":
        out += [
            f"## Program to fix (id {parent.id}, island {parent.island})",
            "No program of this island passes the checker yet. Find why this one fails and repair it.",
            f"error: {(parent.error or 'invalid result').strip()[:2000]}",
        ]
        if getattr(parent, "stderr_tail", None):
            out.append(f"stderr (tail):\n{parent.stderr_tail.strip()[-1500:]}")
        if getattr(parent, "stdout_tail", None):
            out.append(f"stdout (tail):\n{parent.stdout_tail.strip()[-800:]}")
    else:
        out += [
            f"## Current program (id {parent.id}, generation {parent.generation}, island {parent.island})",
            f"combined_score: {fmt_score(parent.combined_score)} (higher is better; delta to its parent "
            f"{fmt_delta(parent.combined_score, parent_delta_base)}; best so far {fmt_score(best_score)}, "
            f"delta to best {fmt_delta(parent.combined_score, best_score)})",
        ]
    if parent.public_metrics:
        out.append(f"metrics: {_metrics(parent.public_metrics)}")
    if parent.text_feedback:
        out.append(f"evaluator feedback: {parent.text_feedback.strip()[:2000]}")
    out += [f"```{language}", parent.code.rstrip(), "```", ""]
    for n, other in enumerate(inspirations, 1):
        out += [
            f"## Inspiration {n} (id {other.id}, combined_score {fmt_score(other.combined_score)})",
            f"```{language}",
            other.code.rstrip(),
            "```",
            "",
        ]
    if failures:
        out.append("## Recent failed children of this program (avoid repeating these)")
        for f in failures:
            out.append(f"- program {f['id']}: {(f.get('error') or 'invalid').strip()[:400]}")
        out.append("")
    if recommendations:
        out += ["## Recommendations from reviewing recent programs", recommendations.strip(), ""]
    preferred = "a" if patch_type == "diff" or mode == "fix" else "b"
    out += [
        "## Your answer",
        ASKS[patch_type if mode == "improve" else "fix"] + f" Preferred form: ({preferred}).",
        "Change only code between the EVOLVE-BLOCK-START and EVOLVE-BLOCK-END markers. Keep the entry "
        "points and return types the task asks for. Answer with a short description of the idea, then either",
        "(a) a diff: one or more blocks of the form",
        DIFF_FORMAT,
        "(each SEARCH must copy existing lines exactly; blocks apply in order), or",
        "(b) the whole new program in one fenced code block (code outside the markers is kept as it is).",
    ]
    return "\n".join(out)


ASKS = {
    "diff": "Make one focused improvement to the current program, as a diff.",
    "full": "Rewrite the mutable part of the current program with a better approach, as a whole program.",
    "cross": "Combine the best ideas of the current program and the inspirations into one better program.",
    "fix": "Fix the program so that it passes the checker, as a diff; keep what already works.",
}
