"""tsp_berlin52: a travelling-salesman heuristic in C++ for TSPLIB's berlin52, scored on the tour it prints."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ....results import Verdict
from ..base import BuiltinTask


# berlin52 of TSPLIB (G. Reinelt, "TSPLIB - a traveling salesman problem library", ORSA Journal on Computing
# 3(4), 1991): 52 locations in Berlin (Groetschel), EDGE_WEIGHT_TYPE EUC_2D; its optimal tour is 7542 long.
BERLIN52 = (
    (565, 575), (25, 185), (345, 750), (945, 685), (845, 655), (880, 660), (25, 230), (525, 1000), (580, 1175),
    (650, 1130), (1605, 620), (1220, 580), (1465, 200), (1530, 5), (845, 680), (725, 370), (145, 665), (415, 635),
    (510, 875), (560, 365), (300, 465), (520, 585), (480, 415), (835, 625), (975, 580), (1215, 245), (1320, 315),
    (1250, 400), (660, 180), (410, 250), (420, 555), (575, 665), (1150, 1160), (700, 580), (685, 595), (685, 610),
    (770, 610), (795, 645), (720, 635), (760, 650), (475, 960), (95, 260), (875, 920), (700, 500), (555, 815),
    (830, 485), (1170, 65), (830, 610), (605, 625), (595, 360), (1340, 725), (1740, 245),
)
BERLIN52_OPTIMUM = 7542
_TOUR_TEXT_MAX = 64 * 1024  # what a tour of 52 cities may take as text, whitespace and all
_CITY = re.compile(r"[0-9]{1,6}")


def tsplib_length(points: tuple[tuple[float, float], ...] | list, tour: list[int]) -> int:
    """A closed tour's length with TSPLIB's EUC_2D distance: each edge's Euclidean length rounded to the nearest
    integer (nint, as TSPLIB defines it)."""
    xy = np.asarray(points, dtype=np.float64)[np.asarray(tour)]
    edges = np.sqrt(((xy - np.roll(xy, -1, axis=0)) ** 2).sum(axis=1))
    return int(np.floor(edges + 0.5).sum())


def score_tsp_tour(value: Any, points: tuple[tuple[float, float], ...] = BERLIN52,
                   optimum: int = BERLIN52_OPTIMUM) -> Verdict:
    """A tour printed by a program (hostile text): the city indices 0..n-1, each once, separated by whitespace.
    combined_score = optimum / length, so 1.0 is an optimal tour."""
    n = len(points)
    if not isinstance(value, str):
        return Verdict.invalid(f"the program must print its tour as text on stdout (got {type(value).__name__})")
    if len(value) > _TOUR_TEXT_MAX:
        return Verdict.invalid(f"the program printed {len(value)} characters; a tour of {n} cities is far shorter")
    words = value.split()
    if len(words) != n:
        return Verdict.invalid(f"the program printed {len(words)} words on stdout; a tour is exactly {n} city "
                               f"indices (0 to {n - 1}) separated by whitespace, and nothing else"
                               + (f" (first words: {' '.join(w[:20] for w in words[:5])})" if words else ""))
    bad = next((w for w in words if not _CITY.fullmatch(w)), None)
    if bad is not None:
        return Verdict.invalid(f"{bad[:40]!r} is not a city index: print plain decimal integers 0 to {n - 1}")
    tour = [int(w) for w in words]
    out_of_range = next((c for c in tour if c >= n), None)
    if out_of_range is not None:
        return Verdict.invalid(f"city {out_of_range} does not exist: the cities are 0 to {n - 1}")
    if len(set(tour)) != n:
        seen, twice = set(), None
        for c in tour:
            if c in seen:
                twice = c
                break
            seen.add(c)
        missing = sorted(set(range(n)) - set(tour))
        return Verdict.invalid(f"city {twice} is visited twice and {len(missing)} cities never "
                               f"(first missing: {missing[:5]}); a tour visits each city exactly once")
    length = tsplib_length(points, tour)
    return Verdict(
        correct=True,
        combined_score=optimum / length,
        public_metrics={"tour_length": length, "optimum": optimum, "gap_percent": 100.0 * (length - optimum) / optimum},
        private_metrics={"tour": tour},
        text_feedback=f"valid tour of length {length} (optimum {optimum}, gap "
                      f"{100.0 * (length - optimum) / optimum:.3f}%)",
    )


def builtin() -> BuiltinTask:
    return BuiltinTask(
        name="tsp_berlin52",
        summary=f"C++: a travelling-salesman heuristic for TSPLIB's berlin52 (optimum {BERLIN52_OPTIMUM}; "
                f"score = {BERLIN52_OPTIMUM} / tour length)",
        description=(
            f"Travelling salesman, in C++: find a short closed tour through the {len(BERLIN52)} cities of berlin52 "
            f"from TSPLIB (52 locations in Berlin; G. Reinelt, TSPLIB, ORSA Journal on Computing 3(4), 1991), whose "
            f"optimal tour is {BERLIN52_OPTIMUM} long. The program is C++17 (g++ -O2; the standard library only); "
            f"it is built and run in the sandbox and must print the tour on stdout: the {len(BERLIN52)} city "
            f"indices 0 to {len(BERLIN52) - 1}, each exactly once, separated by whitespace, and nothing else "
            f"(diagnostics go to stderr). Distances are TSPLIB's EUC_2D: the Euclidean distance rounded to the "
            f"nearest integer, as dist() computes it. A trusted scorer checks the tour and measures it itself; "
            f"combined_score = {BERLIN52_OPTIMUM} / length, so 1.0 is an optimal tour. The seed builds a "
            f"nearest-neighbour tour and improves it by simulated annealing over 2-opt moves. Hints: more and "
            f"better-tuned annealing, Or-opt moves (move a segment of 1 to 3 cities), 2-opt to a local optimum "
            f"with neighbour lists, random restarts or Or-3opt perturbations (iterated local search) within the "
            f"time limit (build and run together)."
        ),
        seed_file="tsp_berlin52/initial.cpp",
        entry="main",
        target_score=1.0,
        language="cpp",
        scorer=score_tsp_tour,
    )
