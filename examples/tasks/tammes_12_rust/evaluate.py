"""Scores a Tammes configuration of 12 points (the split contract: this file never runs the program).

The program is built and run in the sandbox; what it prints on stdout comes here as `data`, a str. score()
runs in a separate sandboxed process that never loads the program, so the program cannot touch its score.
"""

import math

ENTRY = "main"  # a compiled program's entry is its main(): its stdout is the data
N = 12
# The best 12 points are the vertices of a regular icosahedron: the chord between neighbours is
# sqrt(2 - 2 / sqrt(5)) (Tammes problem, solved for N = 12 by Schuette and van der Waerden, 1951).
BEST = math.sqrt(2 - 2 / math.sqrt(5))


def score(data):
    if not isinstance(data, str) or len(data) > 100_000:
        return {"combined_score": 0.0, "correct": False, "error": "print at most a few lines of text"}
    rows = [line.split() for line in data.splitlines() if line.strip()]
    if len(rows) != N or any(len(row) != 3 for row in rows):
        return {"combined_score": 0.0, "correct": False,
                "error": f"print exactly {N} lines of three numbers (x y z); got {len(rows)} lines"}
    points = []
    for row in rows:
        try:
            x, y, z = (float(v) for v in row)
        except ValueError:
            return {"combined_score": 0.0, "correct": False, "error": f"not numbers: {' '.join(row)[:80]}"}
        norm = math.sqrt(x * x + y * y + z * z)
        if not math.isfinite(norm) or abs(norm - 1.0) > 1e-9:
            return {"combined_score": 0.0, "correct": False,
                    "error": f"the point ({x}, {y}, {z}) is not on the unit sphere (|p| = {norm})"}
        points.append((x / norm, y / norm, z / norm))
    smallest = min(math.dist(points[i], points[j]) for i in range(N) for j in range(i + 1, N))
    return {"combined_score": smallest / BEST, "correct": True,
            "public": {"min_distance": smallest, "best_known": BEST},
            "text_feedback": f"smallest distance {smallest!r}; the icosahedron's is {BEST!r}"}
