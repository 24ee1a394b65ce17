"""EVOLVE-BLOCK regions: the mutable parts of a program, and the fixed code around them."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import EvoError

START, END = "EVOLVE-BLOCK-START", "EVOLVE-BLOCK-END"


@dataclass(frozen=True)
class Layout:
    """A program cut into fixed and mutable segments: fixed[0], mutable[0], fixed[1], ..., fixed[-1].

    Marker lines belong to the fixed segments, so len(fixed) == len(mutable) + 1.
    """

    fixed: tuple[str, ...]
    mutable: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # character offsets of each mutable segment

    def join(self, mutable: tuple[str, ...] | list[str]) -> str:
        parts = [self.fixed[0]]
        for region, fixed in zip(mutable, self.fixed[1:]):
            parts += [region, fixed]
        return "".join(parts)


def split(code: str, what: str = "the program") -> Layout:
    lines = code.splitlines(keepends=True)
    fixed: list[str] = []
    mutable: list[str] = []
    spans: list[tuple[int, int]] = []
    buf: list[str] = []
    inside = False
    offset = 0
    region_start = 0
    for number, line in enumerate(lines, 1):
        if START in line:
            if inside:
                raise EvoError(f"{what}: line {number} opens an EVOLVE-BLOCK inside another; close the first "
                               f"with a line holding '{END}'")
            buf.append(line)
            fixed.append("".join(buf))
            buf, inside, region_start = [], True, offset + len(line)
        elif END in line:
            if not inside:
                raise EvoError(f"{what}: line {number} closes an EVOLVE-BLOCK that was never opened; "
                               f"add a line holding '{START}' before it")
            mutable.append("".join(buf))
            spans.append((region_start, offset))
            buf, inside = [line], False
        else:
            buf.append(line)
        offset += len(line)
    if inside:
        raise EvoError(f"{what}: an EVOLVE-BLOCK is opened but never closed; add a line holding '{END}'")
    fixed.append("".join(buf))
    if not mutable:
        raise EvoError(f"{what} has no EVOLVE-BLOCK: mark the mutable code with comment lines holding "
                       f"'{START}' and '{END}'")
    return Layout(tuple(fixed), tuple(mutable), tuple(spans))


def mutable_code(code: str) -> str:
    return "\n".join(split(code).mutable)
