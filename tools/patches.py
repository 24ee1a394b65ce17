"""Applying a proposed change to a parent program.

Two shapes are accepted:
- diff: one or more SEARCH/REPLACE blocks, applied in order; each SEARCH must match
  text inside an EVOLVE-BLOCK, exactly or else line by line ignoring indentation
  (the replacement is then re-indented to the file's indentation);
- full: a whole program; its EVOLVE-BLOCK regions replace the parent's, and the code
  outside the markers is kept from the parent.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from . import markers
from .errors import EvoError

BLOCK_RE = re.compile(
    r"^<{7} SEARCH[ \t]*\n(?P<search>.*?)^={7}[ \t]*\n(?P<replace>.*?)^>{7} REPLACE[ \t]*$",
    re.DOTALL | re.MULTILINE,
)

DIFF_FORMAT = """\
<<<<<<< SEARCH
exact lines copied from the current program (inside an EVOLVE-BLOCK)
=======
the lines that replace them
>>>>>>> REPLACE"""


@dataclass
class Applied:
    code: str
    notes: list[str] = field(default_factory=list)


def parse_blocks(patch: str) -> list[tuple[str, str]]:
    blocks = [(m["search"], m["replace"]) for m in BLOCK_RE.finditer(patch.replace("\r\n", "\n"))]
    if not blocks:
        raise EvoError(
            "the patch holds no SEARCH/REPLACE block; write each change as\n" + DIFF_FORMAT
            + "\nor pass the whole program as `code` instead of `patch`"
        )
    return blocks


def _closest(code: str, search: str) -> str:
    lines = code.splitlines()
    want = search.splitlines() or [""]
    best_ratio, best_at = 0.0, 0
    for start in range(max(1, len(lines) - len(want) + 1)):
        window = "\n".join(lines[start : start + len(want)])
        ratio = difflib.SequenceMatcher(None, window, search.rstrip("\n"), autojunk=False).ratio()
        if ratio > best_ratio:
            best_ratio, best_at = ratio, start
    diff_line = ""
    for offset, wanted in enumerate(want):
        have = lines[best_at + offset] if best_at + offset < len(lines) else "<end of file>"
        if have.strip() != wanted.strip():
            diff_line = f"; first difference at line {best_at + offset + 1}: the program has {have!r}, " \
                        f"the SEARCH has {wanted!r}"
            break
    return f"the closest region starts at line {best_at + 1} ({best_ratio:.0%} similar){diff_line}"


def _line_starts(code: str) -> list[int]:
    starts, pos = [], 0
    for line in code.splitlines(keepends=True):
        starts.append(pos)
        pos += len(line)
    starts.append(pos)
    return starts


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _loose_match(code: str, search: str, replace: str) -> tuple[int, int, str] | None:
    """Line-by-line match ignoring indentation and trailing space; returns (start, end, new text)."""
    lines = code.splitlines(keepends=True)
    want = [l for l in search.splitlines()]
    while want and not want[-1].strip():
        want.pop()
    while want and not want[0].strip():
        want.pop(0)
    if not want:
        return None
    starts = _line_starts(code)
    stripped = [l.strip() for l in lines]
    target = [w.strip() for w in want]
    for i in range(len(lines) - len(want) + 1):
        if stripped[i : i + len(want)] == target:
            file_indent, search_indent = _indent(lines[i]), _indent(want[0])
            out = []
            for line in replace.splitlines(keepends=True):
                if line.strip() and line.startswith(search_indent):
                    line = file_indent + line[len(search_indent):]
                out.append(line)
            new = "".join(out)
            if new and not new.endswith("\n"):
                new += "\n"
            return starts[i], starts[i + len(want)], new
    return None


def _inside_regions(layout: markers.Layout, start: int, end: int) -> bool:
    return any(lo <= start and end <= hi for lo, hi in layout.spans)


def apply_diff(parent: str, patch: str) -> Applied:
    code = parent
    notes: list[str] = []
    for number, (search, replace) in enumerate(parse_blocks(patch), 1):
        if not search.strip():
            raise EvoError(f"SEARCH block {number} is empty; copy the lines to change from the program")
        layout = markers.split(code)
        at = code.find(search)
        if at >= 0:
            start, end, new = at, at + len(search), replace
            if code.find(search, at + 1) >= 0:
                notes.append(f"block {number}: SEARCH text occurs more than once; replaced the first")
        else:
            loose = _loose_match(code, search, replace)
            if loose is None:
                raise EvoError(
                    f"SEARCH block {number} does not match the program: {_closest(code, search)}. "
                    f"Copy the lines exactly from the current program (blocks apply in order, so later blocks "
                    f"see the result of earlier ones)"
                )
            start, end, new = loose
            notes.append(f"block {number}: matched ignoring indentation")
        if not _inside_regions(layout, start, end):
            line = code.count("\n", 0, start) + 1
            raise EvoError(
                f"SEARCH block {number} (line {line}) reaches outside the EVOLVE-BLOCK regions; only code "
                f"between '{markers.START}' and '{markers.END}' may change"
            )
        code = code[:start] + new + code[end:]
    try:
        moved = markers.split(code).fixed != markers.split(parent).fixed
    except EvoError:
        moved = True
    if moved:  # a REPLACE that writes a marker line would move code in or out of the mutable regions
        raise EvoError(f"the change adds, removes or moves EVOLVE-BLOCK marker lines ('{markers.START}', "
                       f"'{markers.END}'); keep the markers as they are and change only the code between them")
    return Applied(code, notes)


def apply_full(parent: str, program: str) -> Applied:
    parent_layout = markers.split(parent, "the parent program")
    layout = markers.split(program, "the proposed program")
    if len(layout.mutable) != len(parent_layout.mutable):
        raise EvoError(
            f"the proposed program has {len(layout.mutable)} EVOLVE-BLOCK regions, the parent has "
            f"{len(parent_layout.mutable)}; keep the markers as they are and change only the code between them"
        )
    notes = []
    dropped = _dropped_edits(parent_layout.fixed, layout.fixed)
    if dropped:
        notes.append("these edits outside the EVOLVE-BLOCK regions were dropped (only code between the markers "
                     "may change; the parent's code outside them is kept): " + "; ".join(dropped))
    return Applied(parent_layout.join(layout.mutable), notes)


def _dropped_edits(parent_fixed: tuple[str, ...], fixed: tuple[str, ...], limit: int = 8) -> list[str]:
    """The lines a whole program changed outside the markers, as '-old' / '+new' (whitespace ignored)."""
    changes: list[str] = []
    for old, new in zip(parent_fixed, fixed):
        old_lines = [line.rstrip() for line in old.splitlines() if line.strip()]
        new_lines = [line.rstrip() for line in new.splitlines() if line.strip()]
        if [line.strip() for line in old_lines] == [line.strip() for line in new_lines]:
            continue
        for line in difflib.unified_diff(old_lines, new_lines, n=0, lineterm=""):
            if line[:1] in "+-" and not line.startswith(("+++", "---")):
                changes.append(repr(line[:1] + line[1:].strip()[:120]))
    if len(changes) > limit:
        changes = changes[:limit] + [f"and {len(changes) - limit} more changed lines"]
    return changes


def unified_diff(parent: str, child: str) -> str:
    return "".join(
        difflib.unified_diff(parent.splitlines(keepends=True), child.splitlines(keepends=True), "parent", "child")
    )


class UnusableReply(ValueError):
    """A model's answer that holds no change."""


_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.DOTALL)


def parse_reply(text: str) -> tuple[str | None, str | None, str]:
    """(patch, code, description) from a model's answer: SEARCH/REPLACE blocks win over a fenced program."""
    prose = [line.strip(" #*") for line in text.split("<<<<<<< SEARCH")[0].split("```")[0].splitlines()]
    description = next((line for line in prose if line), "")[:300]
    if "<<<<<<< SEARCH" in text:
        return text, None, description
    blocks = _FENCE.findall(text)
    if blocks:
        return None, max(blocks, key=len), description
    raise UnusableReply("the reply holds neither SEARCH/REPLACE blocks nor a fenced code block")
