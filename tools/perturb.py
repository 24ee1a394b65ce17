"""The offline `perturb` operator: nudge numeric literals inside the EVOLVE-BLOCK regions.

No model and no cost; useful for tuning constants, and what lets a run make progress
with no API key at all.
"""

from __future__ import annotations

import io
import tokenize

import numpy as np

from . import lexing, markers

OPERATOR = "perturb"  # the name proposals, arms and novelty exemptions know this operator by

SCALES = (0.003, 0.02, 0.1)


def _literals(region: str, language: str = "python") -> list[tuple[int, int, str]]:
    """(start, end, text) of the numeric literals of a region, by character offset (another language's as
    tools/lexing.py reads them: suffixes such as 1.0f, 10u, 1.0_f64 kept)."""
    if language != "python":
        return [tuple(found) for found in lexing.literals(region, language)]
    line_starts = [0]
    for line in region.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    found = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(region).readline):
            if tok.type == tokenize.NUMBER and not tok.string.lower().endswith("j"):
                (r0, c0), (r1, c1) = tok.start, tok.end
                found.append((line_starts[r0 - 1] + c0, line_starts[r1 - 1] + c1, tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    return found


def _nudge(text: str, rng: np.random.Generator) -> str | None:
    try:
        value = int(text.replace("_", ""), 0)
        is_int = True
    except ValueError:
        value = float(text.replace("_", ""))
        is_int = False
    if is_int:
        if value in (0, 1) or rng.random() < 0.5:
            return None  # counts and indices: change rarely
        return str(max(0, value + int(rng.choice([-1, 1]))))
    scale = float(rng.choice(SCALES))
    new = value * (1.0 + rng.normal(0.0, scale)) if value != 0 else rng.normal(0.0, scale)
    return repr(float(f"{new:.8g}"))


def perturb(code: str, rng: np.random.Generator, max_changes: int = 3,
            language: str = "python") -> tuple[str, str] | None:
    """A perturbed copy of `code` and a description of the change, or None when nothing can change."""
    layout = markers.split(code)
    candidates = []
    for region_index, region in enumerate(layout.mutable):
        for start, end, text in _literals(region, language):
            if language != "python" and lexing.value_of(text) in (0, 1) and lexing.is_integer(text):
                continue  # never nudged (indices, counts of one): leave room for the literals that are
            candidates.append((region_index, start, end, text))
    if not candidates:
        return None
    count = int(rng.integers(1, max_changes + 1))
    picked = sorted(rng.choice(len(candidates), size=min(count, len(candidates)), replace=False),
                    key=lambda i: (candidates[i][0], -candidates[i][1]))
    regions = list(layout.mutable)
    changes = []
    for i in picked:
        region_index, start, end, text = candidates[i]
        new = _nudge(text, rng) if language == "python" else lexing.nudged(text, rng, SCALES)
        if new is None or new == text:
            continue
        region = regions[region_index]
        regions[region_index] = region[:start] + new + region[end:]
        changes.append(f"{text} -> {new}")
    if not changes:
        return None
    return layout.join(regions), "perturb: " + ", ".join(changes)


def offline_limits(code: str, language: str = "python") -> str | None:
    """Why `perturb` can do little or nothing for this program, with how to give the run a model; None when
    its EVOLVE-BLOCKs hold decimal numbers to nudge."""
    try:
        regions = markers.split(code).mutable
    except Exception:  # noqa: BLE001 - a seed without valid markers is refused elsewhere, with its reason
        return None
    integers = []
    for _, _, text in (found for region in regions for found in _literals(region, language)):
        if language != "python":
            if not lexing.is_integer(text):
                return None  # a decimal number: perturb has something to tune
            integers.append(lexing.value_of(text))
            continue
        try:
            integers.append(int(text.replace("_", ""), 0))
        except ValueError:
            return None  # a decimal number: perturb has something to tune
    if any(value not in (0, 1) for value in integers):
        what = "can only nudge the integers of this task's EVOLVE-BLOCK (it holds no decimal number), so it " \
               "seldom finds a change that helps"
    else:
        what = "finds nothing to change in this task's EVOLVE-BLOCK (it holds no number it can nudge)"
    return (f"the offline operator perturb {what}: the run needs a model. Give one with `evomcp run TASK --model "
            f"MODEL` (or --model 'name=...,model=...,base_url=...'), or in start_run's driver "
            f"({{\"models\": [...]}}), or be the model yourself from an MCP client (sample_parent, "
            f"propose_candidate)")
