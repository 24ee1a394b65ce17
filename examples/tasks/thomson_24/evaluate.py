"""The Thomson problem for 24 points, scored under the split contract.

ENTRY names the program's function. evomcp runs it in the candidate's sandbox, where it only returns
data; then score(data) runs in a separate sandboxed process that never loads the candidate's code,
so a candidate cannot reach its own score. score() treats the data as hostile: it may be any JSON
value (a dict instead of a list, strings, NaN or infinity, integers too large for a float, ...).
"""

import math

ENTRY = "place_points"

N_POINTS = 24
BEST_KNOWN = 223.347074052  # lowest known energy of 24 unit charges on the unit sphere (a snub cube)
NORM_TOLERANCE = 1e-6  # how far from the unit sphere a point may be before it is refused
MIN_DISTANCE = 1e-6  # closer points count as coinciding


class Invalid(ValueError):
    """The data is not a valid answer; the message says why."""


def _coordinate(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"{where} is {type(value).__name__} {str(value)[:40]!r}, not a number")
    try:
        number = float(value)
    except OverflowError:
        raise Invalid(f"{where} is an integer too large for a float") from None
    if not math.isfinite(number):
        raise Invalid(f"{where} is {number!r}, not a finite number")
    return number


def _points(data):
    """The N_POINTS points of `data`, projected exactly onto the unit sphere."""
    if not isinstance(data, list):
        raise Invalid(f"place_points() must return a list of {N_POINTS} points [x, y, z], not a "
                      f"{type(data).__name__}")
    if len(data) != N_POINTS:
        raise Invalid(f"place_points() returned {len(data)} points, expected {N_POINTS}")
    points = []
    for i, point in enumerate(data):
        if not isinstance(point, list) or len(point) != 3:
            raise Invalid(f"point {i} is not a list [x, y, z] of three numbers")
        x, y, z = (_coordinate(c, f"coordinate {k} of point {i}") for k, c in enumerate(point))
        norm = math.sqrt(x * x + y * y + z * z)
        if not abs(norm - 1) <= NORM_TOLERANCE:
            raise Invalid(f"point {i} is not on the unit sphere: its norm is {norm!r}")
        points.append((x / norm, y / norm, z / norm))
    return points


def energy(points):
    """Coulomb energy (sum of 1/distance over pairs) and the closest distance."""
    total, closest = 0.0, math.inf
    for i in range(len(points)):
        for j in range(i):
            d = math.dist(points[i], points[j])
            if d < MIN_DISTANCE:
                raise Invalid(f"points {j} and {i} coincide (distance {d!r})")
            total += 1.0 / d
            closest = min(closest, d)
    return total, closest


def score(data):
    try:
        points = _points(data)
        total, closest = energy(points)
    except Invalid as exc:
        return {"combined_score": 0.0, "correct": False, "error": str(exc)}
    return {
        "combined_score": BEST_KNOWN / total,
        "correct": True,
        "public": {"energy": total, "closest_distance": closest},
        "text_feedback": f"energy {total!r} (best known {BEST_KNOWN!r}); closest pair {closest!r} apart",
    }
