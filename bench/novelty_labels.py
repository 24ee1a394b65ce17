"""The novelty check on a labelled set of proposals: how often it refuses real work, how often it lets a copy in.

Run: .venv/bin/python bench/novelty_labels.py [--json] [--errors]

bench/data/novelty/ holds programs (NAME.py) and, next to each, proposals on it (NAME.cases): SEARCH/REPLACE
blocks or a whole program, each labelled `same` (the program written differently: comments, docstrings,
formatting, names of locals or helpers, the spelling of numbers, annotations, no-op statements; to be
refused) or `new` (a change of behaviour however small: another constant, another move, a fix, another
output; to be accepted). To each program the script adds generated cases: `same` ones (its mutable code
re-printed by ast.unparse, its comments stripped, the locals of each function renamed token by token)
and `new` ones (the offline `perturb` operator's constant changes, one arithmetic or comparison operator
swapped).

The check decides as propose_candidate does: a proposal is refused when its program has the canonical
fingerprint of the program it changes (tools/canonical.py), or leaves the code as it was. For comparison,
the policy it replaced (cosine similarity of hashed n-gram embeddings above 0.995) is run on the same set.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import sys
import time
import tokenize
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evomcp.tools import markers, patches
from evomcp.tools.canonical import fingerprint
from evomcp.tools.errors import EvoError
from evomcp.tools.novelty import embed
from evomcp.tools.perturb import perturb

DATA = Path(__file__).with_name("data") / "novelty"
ROOT = Path(__file__).resolve().parents[1]
# programs the labelled cases are written against: the seeds of the project's tasks as they are, and
# the larger variants kept in DATA (each NAME.py with its NAME.cases)
SEEDS = {"circle_packing_seed": ROOT / "evaluators" / "tasks" / "circle_packing" / "initial.py",
         "heilbronn_seed": ROOT / "evaluators" / "tasks" / "heilbronn_triangle" / "initial.py",
         "thomson_seed": ROOT / "examples" / "tasks" / "thomson_24" / "initial.py",
         "tsp_seed": ROOT / "examples" / "tasks" / "tsp_heuristic" / "initial.py"}


def programs() -> dict[str, Path]:
    """Program name -> its file; NAME.cases in DATA holds the cases written against it."""
    return {**SEEDS, **{p.stem: p for p in DATA.glob("*.py")}}
# `same` kinds that restructure the code rather than re-word it: a variable split in two and a new local
# instead of a rebound one (the definition-use webs of tools/webs.py see through these), a parameter aliased
# and an import changed (nothing does yet).
RESTRUCTURED = {"split", "alias", "rebind", "import"}
HEADER = re.compile(r"^### (same|new) \| ([\w-]+) \| (.+)$")
OLD_THRESHOLD = 0.995


@dataclass
class Case:
    program: str  # file name of the program the proposal changes
    label: str  # "same" or "new"
    kind: str
    what: str
    source: str  # "written" or "generated"
    child: str  # the program after the proposal


def parse_cases(path: Path) -> list[tuple[str, str, str, str]]:
    """(label, kind, what, body) of each case of a .cases file."""
    cases, current, body = [], None, []
    for line in path.read_text().splitlines(keepends=True):
        match = HEADER.match(line.rstrip("\n"))
        if match:
            if current:
                cases.append((*current, "".join(body)))
            current, body = match.groups(), []
        elif current:
            body.append(line)
    if current:
        cases.append((*current, "".join(body)))
    return cases


def apply(program: str, body: str) -> str:
    if "<<<<<<< SEARCH" in body:
        return patches.apply_diff(program, body).code
    return patches.apply_full(program, body.strip("\n") + "\n").code


# ---------------------------------------------------------------- generated cases


def _regions(code: str, rewrite) -> str:
    layout = markers.split(code)
    return layout.join([rewrite(region) for region in layout.mutable])


def _unparse(region: str) -> str:
    return ast.unparse(ast.parse(region)) + "\n"


def _strip_comments(region: str) -> str:
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(region).readline) if t.type != tokenize.COMMENT]
    return "\n".join(line.rstrip() for line in tokenize.untokenize(tokens).splitlines()) + "\n"


def _rename_locals(code: str) -> str | None:
    """Each function's parameters and assigned locals renamed within its lines, token by token."""
    tree = ast.parse(code)
    protected = {k.arg for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg}
    protected |= {a.attr for a in ast.walk(tree) if isinstance(a, ast.Attribute)}
    identifiers = {t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type == tokenize.NAME}
    lines = code.splitlines(keepends=True)
    layout = markers.split(code)
    first_mutable = layout.fixed[0].count("\n") + 1
    changed = False
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.lineno >= first_mutable]:
        if any(isinstance(n, (ast.Global, ast.Nonlocal)) for n in ast.walk(fn)):
            continue
        names = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        names |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        names -= protected
        mapping = {name: f"{name}_r" for name in names if f"{name}_r" not in identifiers and name != "_"}
        if not mapping:
            continue
        start, end = fn.lineno - 1, fn.end_lineno
        span = "".join(lines[start:end])
        out, previous = [], None
        for tok in tokenize.generate_tokens(io.StringIO(span).readline):
            if tok.type == tokenize.NAME and tok.string in mapping and previous != ".":
                tok = tok._replace(string=mapping[tok.string])
            out.append(tok)
            previous = tok.string
        renamed = tokenize.untokenize(out)
        if renamed != span:
            lines[start:end] = renamed.splitlines(keepends=True)
            changed = True
    return "".join(lines) if changed else None


_OPERATORS = {"+": "-", "-": "+", "*": "/", "<": "<=", ">": ">=", "<=": "<", ">=": ">"}


def _swap_operator(code: str, rng: np.random.Generator) -> str | None:
    layout = markers.split(code)
    region_index = int(rng.integers(len(layout.mutable)))
    region = layout.mutable[region_index]
    tokens = list(tokenize.generate_tokens(io.StringIO(region).readline))
    spots = [i for i, t in enumerate(tokens) if t.type == tokenize.OP and t.string in _OPERATORS
             and tokens[i - 1].type in (tokenize.NAME, tokenize.NUMBER, tokenize.OP)
             and tokens[i - 1].string not in ("(", ",", "=", "[", "**", "*")]
    if not spots:
        return None
    i = spots[int(rng.integers(len(spots)))]
    tokens[i] = tokens[i]._replace(string=_OPERATORS[tokens[i].string])
    regions = list(layout.mutable)
    regions[region_index] = tokenize.untokenize(tokens)
    child = layout.join(regions)
    try:
        if ast.dump(ast.parse(child)) == ast.dump(ast.parse(code)):
            return None
    except SyntaxError:
        return None
    return child


def generated(name: str, code: str) -> list[Case]:
    cases = []

    def add(label: str, kind: str, what: str, child: str | None) -> None:
        if child is not None and child != code:
            cases.append(Case(name, label, kind, what, "generated", child))

    add("same", "formatting", "the mutable code re-printed by ast.unparse", _regions(code, _unparse))
    add("same", "comments", "every comment of the mutable code stripped", _regions(code, _strip_comments))
    add("same", "rename", "the locals of every function renamed", _rename_locals(code))
    for seed in range(4):
        rng = np.random.default_rng(seed)
        change = perturb(code, rng)
        if change is not None:
            pairs = re.findall(r"(\S+) -> (\S+?)(?:,|$)", change[1])
            if any(float(a) != float(b) for a, b in pairs):  # a respelling of the same number is not new
                add("new", "perturb", change[1], change[0])
        add("new", "operator", f"one operator swapped (seed {seed})", _swap_operator(code, rng))
    return cases


# ---------------------------------------------------------------- the check


def load() -> tuple[list[Case], list[str]]:
    cases, broken = [], []
    for name, program_path in sorted(programs().items()):
        code = program_path.read_text()
        cases_path = DATA / f"{name}.cases"
        if cases_path.exists():
            for label, kind, what, body in parse_cases(cases_path):
                try:
                    child = apply(code, body)
                except EvoError as exc:
                    broken.append(f"{name}.py: {label} | {kind} | {what}: {exc}")
                    continue
                cases.append(Case(f"{name}.py", label, kind, what, "written", child))
        cases += generated(f"{name}.py", code)
    return cases, broken


def refused(case: Case, parent: str) -> bool:
    return case.child == parent or fingerprint(case.child) == fingerprint(parent)


def refused_by_cosine(case: Case, parent: str) -> bool:
    return case.child == parent or float(embed(case.child) @ embed(parent)) > OLD_THRESHOLD


def rates(cases: list[Case], parents: dict[str, str], decide) -> dict:
    same = [c for c in cases if c.label == "same"]
    new = [c for c in cases if c.label == "new"]
    false_refusals = [c for c in new if decide(c, parents[c.program])]
    false_acceptances = [c for c in same if not decide(c, parents[c.program])]
    return {
        "new": len(new), "same": len(same),
        "false_refusals": len(false_refusals), "false_acceptances": len(false_acceptances),
        "false_refusal_rate": len(false_refusals) / max(1, len(new)),
        "false_acceptance_rate": len(false_acceptances) / max(1, len(same)),
        "false_acceptances_of_rewordings": sum(c.kind not in RESTRUCTURED for c in false_acceptances),
        "rewordings": sum(c.kind not in RESTRUCTURED for c in same),
        "wrong": [f"{c.program}: {c.label} | {c.kind} | {c.what} ({c.source})" for c in false_refusals + false_acceptances],
    }


def fingerprint_ms(code: str) -> float:
    """CPU milliseconds per fingerprint of `code`, best of 7 runs of 40 calls."""
    best = float("inf")
    for _ in range(7):
        start = time.process_time()
        for _ in range(40):
            fingerprint(code)
        best = min(best, (time.process_time() - start) / 40)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--errors", action="store_true", help="list every case decided wrongly")
    args = parser.parse_args()
    cases, broken = load()
    parents = {f"{name}.py": path.read_text() for name, path in programs().items()}
    now = rates(cases, parents, refused)
    before = rates(cases, parents, refused_by_cosine)
    if args.json:
        print(json.dumps({"cases": len(cases), "broken": broken, "canonical": now, "cosine_0.995": before}))
        sys.exit(1 if broken else 0)
    by = Counter((c.source, c.label) for c in cases)
    print(f"{len(cases)} labelled proposals on {len(parents)} programs: "
          + ", ".join(f"{n} {label} ({source})" for (source, label), n in sorted(by.items())))
    kinds = Counter((c.label, c.kind) for c in cases)
    print("kinds: " + ", ".join(f"{label}/{kind} {n}" for (label, kind), n in sorted(kinds.items())))
    print()
    print(f"{'policy':30} {'false refusals':>20} {'false acceptances':>20}  {'of re-wordings only':>20}")
    for title, figures in (("canonical fingerprint (now)", now), ("cosine > 0.995 (before)", before)):
        print(f"{title:30} {figures['false_refusals']:>4} of {figures['new']:<4}{figures['false_refusal_rate']:>7.1%}   "
              f"{figures['false_acceptances']:>4} of {figures['same']:<4}{figures['false_acceptance_rate']:>7.1%}   "
              f"{figures['false_acceptances_of_rewordings']:>4} of {figures['rewordings']:<4}"
              f"{figures['false_acceptances_of_rewordings'] / max(1, figures['rewordings']):>7.1%}")
    print("(re-wordings: the `same` cases but " + ", ".join(sorted(RESTRUCTURED)) + ", which restructure the code)")
    for title, figures in (("now", now), ("before", before)):
        if title == "now" or args.errors:
            for line in figures["wrong"]:
                print(f"  decided wrongly ({title}): {line}")
    print()
    for name, code in sorted(parents.items()):
        print(f"fingerprint CPU, {name} ({len(code.splitlines())} lines): {fingerprint_ms(code):.2f} ms "
              f"(best of 7 runs of 40 calls)")
    for line in broken:
        print(f"BROKEN CASE (its patch does not apply): {line}")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
