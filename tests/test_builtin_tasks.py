"""Built-in tasks: seeds, strict scorers (end to end and on arrays) and the Numba kernels."""

import json
import math
import textwrap

import anyio
import numpy as np
import pytest

from evomcp.evaluators.executor import LocalExecutor
from evomcp.evaluators.tasks.autocorrelation_first import autocorrelation_bound, score_autocorrelation_first
from evomcp.evaluators.tasks.circle_packing import kernel as circle_kernel, score_circle_packing
from evomcp.evaluators.tasks.heilbronn_triangle import (
    TRIANGLE_SIDE,
    kernel as triangle_kernel,
    score_heilbronn_triangle,
    triangle_edge_distances,
)
from evomcp.evaluators.tasks.min_max_distance import kernel as distance_kernel, score_min_max_distance
from evomcp.evaluators.task import BUILTIN_TASKS, resolve_task

MIN_MAX_BEST = 12.88926611203463
AUTOCORRELATION_BEST = 1.5053
HEIGHT = TRIANGLE_SIDE * math.sqrt(3) / 2


def candidate(entry: str, body: str) -> str:
    """A program whose EVOLVE-BLOCK computes `result` and whose entry function returns it."""
    return ("import numpy as np\n\n# EVOLVE-BLOCK-START\n" + textwrap.dedent(body)
            + f"# EVOLVE-BLOCK-END\n\n\ndef {entry}():\n    return result\n")


def grid_packing(n: int, per_row: int) -> str:
    """`n` equal circles on a per_row x per_row grid of cells, a little smaller than the cells."""
    return f"""
        k = np.arange({n})
        r = 0.5 / {per_row} * (1 - 1e-9)
        centers = np.stack([(k % {per_row} + 0.5) / {per_row}, (k // {per_row} + 0.5) / {per_row}], axis=1)
        result = (centers, np.full({n}, r))
    """


HEX_PATCH = """
    lattice = np.array([(i + 0.5 * j, j * np.sqrt(3) / 2) for i in range(-5, 6) for j in range(-5, 6)])
    nearest = np.argsort(np.linalg.norm(lattice - [0.25, np.sqrt(3) / 12], axis=1), kind="stable")
    result = lattice[nearest[:16]]
"""

# task name -> (seed score range, better candidate body or None, invalid cases (body, words in the reason))
CASES = {
    "circle_packing_26": ((1.5, 2.0), grid_packing(26, 6), [
        ("result = (np.full((26, 2), np.nan), np.ones(26) * 0.01)", "non-finite"),
        ("result = (np.full((26, 2), 0.5), np.ones(27) * 0.01)", "radii has shape"),
        ("result = (np.zeros((26, 2)), np.ones(26) * 0.01)", "not inside"),
        ("result = [['a', 'b']] * 26, [0.1] * 26", "strings"),
    ]),
    "circle_packing_32": ((1.5, 2.0), grid_packing(32, 6), [
        ("result = (np.full((32, 2), np.inf), np.ones(32) * 0.01)", "non-finite"),
        ("result = (np.full((26, 2), 0.5), np.ones(26) * 0.01)", "centers has shape"),
        ("result = (np.full((32, 2), 0.5), np.ones(32) * 0.01)", "overlap"),
        ("result = {'centers': 1}", "must return"),
    ]),
    "heilbronn_triangle_11": ((0.005, 0.01), """
        t = 2 * np.pi * np.arange(11) / 11
        result = [0.7598, 0.4387] + 0.43 * np.stack([np.cos(t), np.sin(t)], axis=1)
    """, [
        ("result = np.full((11, 2), np.nan)", "non-finite"),
        ("result = np.full((10, 2), 0.5)", "shape"),
        ("result = np.full((11, 2), 0.5); result[3] = [0.5, -1e-9]", "point 3"),
        ("result = np.full((11, 2), 0.5); result[4] = [0.1, 0.9]", "left edge"),
        ("result = 'the answer'", "strings"),
        ("result = [[True, False]] * 11", "booleans"),
    ]),
    "min_max_distance_16": ((0.7, 0.72), HEX_PATCH, [
        ("result = np.full((16, 2), np.nan)", "non-finite"),
        ("result = np.zeros((16, 3)) + np.arange(16)[:, None]", "shape"),
        ("result = np.arange(32.0).reshape(16, 2); result[5] = result[9]", "points 5 and 9 coincide"),
        ("result = np.arange(32.0).reshape(16, 2); result[2, 1] = 1e9", "point 2 has a coordinate"),
        ("result = [[None, 1.0]] * 16", "not an array of numbers"),
    ]),
    "autocorrelation_first": ((0.7, 0.8), """
        u = (np.arange(50) + 0.5) / 50 * 2 - 1
        result = 1 + 0.5 * u
    """, [
        ("result = np.array([1.0, np.nan, 2.0])", "non-finite"),
        ("result = np.ones((10, 2))", "shape"),
        ("result = np.ones(601)", "600"),
        ("result = []", "shape"),
        ("result = np.array([1.0, -0.5, 2.0])", "heights[1]"),
        ("result = np.zeros(20)", "all heights are zero"),
        ("result = ['1', '2']", "strings"),
    ]),
}


def jsonable(value):
    """What the sandbox hands the scorer: JSON with non-finite floats as repr strings."""
    def fix(v):
        if isinstance(v, list):
            return [fix(x) for x in v]
        return repr(v) if isinstance(v, float) and not math.isfinite(v) else v
    return json.loads(json.dumps(fix(np.asarray(value).tolist())))


def test_every_builtin_task_is_covered():
    """Python tasks here; a task in another language in tests/test_languages.py (its seed, a better program and
    invalid output, end to end, and its scorer on hostile text)."""
    assert set(CASES) == {name for name, task in BUILTIN_TASKS.items() if task.language == "python"}
    compiled = {name for name, task in BUILTIN_TASKS.items() if task.language != "python"}
    assert compiled == {"tsp_berlin52"}


async def evaluate_all(task, codes):
    """Evaluate the codes concurrently; the executor's helper processes are closed afterwards."""
    executor = LocalExecutor(slots=2)
    reports = [None] * len(codes)

    async def one(i, code):
        reports[i] = await executor.evaluate(task, code)

    try:
        async with anyio.create_task_group() as tg:
            for i, code in enumerate(codes):
                tg.start_soon(one, i, code)
    finally:
        if hasattr(executor, "aclose"):
            await executor.aclose()
    return reports


@pytest.mark.parametrize("name", sorted(CASES))
async def test_builtin_task_end_to_end(name):
    task = resolve_task(name)
    assert task.kind == "builtin" and task.entry in task.initial_code
    assert "EVOLVE-BLOCK-START" in task.initial_code and "EVOLVE-BLOCK-END" in task.initial_code
    (low, high), better, invalid = CASES[name]
    codes = [task.initial_code, candidate(task.entry, better)] + [candidate(task.entry, b) for b, _ in invalid]
    seed, improved, *bad = await evaluate_all(task, codes)
    assert seed.correct and not seed.failed, seed.error
    assert 0 < low < seed.combined_score < high < task.target_score
    assert improved.correct, improved.error
    assert improved.combined_score > seed.combined_score
    assert seed.private_metrics and seed.public_metrics
    for report, (body, needle) in zip(bad, invalid):
        assert not report.correct and not report.failed, (body, report.error)
        assert report.error.startswith("invalid: ") and needle in report.error, (body, report.error)


def test_circle_seed_valid_for_both_sizes():
    """One seed file serves 26 and 32 circles; the ring line the other tests patch is intact."""
    for n in (26, 32):
        task = resolve_task(f"circle_packing_{n}")
        assert "    rings = [(8, 0.22), (17, 0.42)]\n" in task.initial_code
        scope = {}
        exec(compile(task.initial_code, "seed", "exec"), scope)
        centers, radii = scope["run_packing"]()
        verdict = score_circle_packing((centers, radii), n=n)
        assert verdict.correct and verdict.combined_score < (2.0 if n == 26 else 2.2)


# --- scorers on arrays -------------------------------------------------------------------------

def test_heilbronn_exact_on_regular_polygon():
    n, radius = 11, 0.3
    t = 2 * np.pi * np.arange(n) / n
    points = np.array([TRIANGLE_SIDE / 2, HEIGHT / 3]) + radius * np.stack([np.cos(t), np.sin(t)], axis=1)
    theta = 2 * np.pi / n
    expected = radius**2 * np.sin(theta) * (1 - np.cos(theta))  # three consecutive vertices; the area is 1
    verdict = score_heilbronn_triangle(points, n=11)
    assert verdict.correct and verdict.combined_score == pytest.approx(expected, rel=1e-12)
    i, j, k = verdict.public_metrics["smallest_triangle"]
    assert any({i, j, k} == {m % n, (m + 1) % n, (m + 2) % n} for m in range(n))
    assert verdict.private_metrics["points"] == points.tolist()


def test_heilbronn_boundary_tolerance_and_collinear():
    vertices = np.array([[0, 0], [TRIANGLE_SIDE, 0], [TRIANGLE_SIDE / 2, HEIGHT]])
    assert np.all(triangle_edge_distances(vertices) > -1e-15)
    # vertices, edge midpoints and five copies of the centroid: on the boundary is inside, and
    # coincident points make a triangle of area exactly 0 (still valid, scoring 0)
    points = np.concatenate([vertices, (vertices + np.roll(vertices, 1, axis=0)) / 2,
                             np.full((5, 2), [TRIANGLE_SIDE / 2, HEIGHT / 3])])
    verdict = score_heilbronn_triangle(points, n=11)
    assert verdict.correct and verdict.combined_score == 0.0
    nudged = points.copy()
    nudged[6] = [TRIANGLE_SIDE / 2, -1e-13]  # within the tolerance
    assert score_heilbronn_triangle(nudged, n=11).correct
    nudged[6] = [TRIANGLE_SIDE / 2, -1e-11]
    verdict = score_heilbronn_triangle(nudged, n=11)
    assert not verdict.correct and "point 6" in verdict.error and "bottom edge" in verdict.error
    nudged[6] = [TRIANGLE_SIDE, 0.01]
    assert "right edge" in score_heilbronn_triangle(nudged, n=11).error


def test_heilbronn_single_small_triangle():
    """Triangle vertices plus the centroid: the smallest of the three equal pieces is 1/3."""
    vertices = [[0, 0], [TRIANGLE_SIDE, 0], [TRIANGLE_SIDE / 2, HEIGHT]]
    assert triangle_kernel.min_triangle_area(np.array(vertices, float))[0] == pytest.approx(1.0, rel=1e-14)
    with_centroid = np.array(vertices + [[TRIANGLE_SIDE / 2, HEIGHT / 3]], float)
    assert triangle_kernel.min_triangle_area(with_centroid)[0] == pytest.approx(1 / 3, rel=1e-12)


def test_min_max_exact_values():
    grid = np.array([(i, j) for i in range(4) for j in range(4)], float)
    verdict = score_min_max_distance(grid, n=16, dim=2, best=MIN_MAX_BEST)
    assert verdict.correct and verdict.public_metrics["ratio_squared"] == 18.0
    assert verdict.combined_score == pytest.approx(MIN_MAX_BEST / 18)
    rotated_scaled = 7.5 * grid @ np.array([[0.6, 0.8], [-0.8, 0.6]]) + 3
    assert score_min_max_distance(rotated_scaled, n=16, dim=2, best=MIN_MAX_BEST).combined_score == pytest.approx(
        MIN_MAX_BEST / 18, rel=1e-12)
    tiny = grid * 1e-300
    assert not score_min_max_distance(tiny, n=16, dim=2, best=MIN_MAX_BEST).correct


def test_autocorrelation_exact_values():
    # constant f = 1 on [-1/4, 1/4]: (f*f)(0) = 1/2 and (integral f)^2 = 1/4, so C = 2
    for n in (1, 7, 600):
        assert autocorrelation_bound(np.ones(n))[0] == pytest.approx(2.0, rel=1e-12)
    # f = 1 on [-1/4, 0): (f*f)(-1/4) = 1/4 and (integral f)^2 = 1/16, so C = 4
    assert autocorrelation_bound(np.array([1.0, 0.0])) == (4.0, 1)
    # f = 1 then 2: (f*f)(0) = 2 * 1/4 + 2 * 1/4 = 1 and (integral f)^2 = (3/4)^2, so C = 16/9
    assert autocorrelation_bound(np.array([1.0, 2.0]))[0] == pytest.approx(16 / 9, rel=1e-14)
    verdict = score_autocorrelation_first(np.ones(10) * 3.0, max_steps=600, best=AUTOCORRELATION_BEST)
    assert verdict.correct and verdict.combined_score == pytest.approx(AUTOCORRELATION_BEST / 2)
    assert verdict.public_metrics["argmax_t"] == 0.0 and verdict.public_metrics["n_steps"] == 10


def test_autocorrelation_bound_is_exact_for_step_functions():
    """Splitting every step in k equal parts is the same function: the bound must not move."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        heights = rng.random(rng.integers(1, 40))
        heights[rng.random(heights.size) < 0.3] = 0.0
        if heights.max() == 0:
            continue
        for k in (2, 5):
            assert autocorrelation_bound(np.repeat(heights, k))[0] == pytest.approx(
                autocorrelation_bound(heights)[0], rel=1e-12)
        # and a brute-force sample of (f*f)(t) never exceeds it
        fine = np.repeat(heights, 64)
        sampled = 2 * fine.size * np.convolve(fine, fine).max() / fine.sum() ** 2
        assert sampled == pytest.approx(autocorrelation_bound(heights)[0], rel=1e-12)


@pytest.mark.parametrize("score", [
    lambda v: score_heilbronn_triangle(v, n=11),
    lambda v: score_min_max_distance(v, n=16, dim=2, best=MIN_MAX_BEST),
    lambda v: score_autocorrelation_first(v, max_steps=600, best=AUTOCORRELATION_BEST),
])
@pytest.mark.parametrize("value,needle", [
    (jsonable(np.full((16, 2), np.nan)), "non-finite"),
    (jsonable([0.1, -np.inf]), "non-finite"),
    ([[0.1, "inf"]] * 16, "non-finite"),
    ([[0.1, 0.2, 0.3]] * 3, "shape"),
    ("12", "strings"),
    ([["0.1", "0.2"]] * 16, "strings"),
    ([[0.1, [0.2]]] * 16, "not an array of numbers"),
    ({"x": 1}, "not an array of numbers"),
    (None, "not an array of numbers"),
])
def test_scorers_reject_bad_data_with_reason(score, value, needle):
    verdict = score(value)
    assert not verdict.correct and verdict.combined_score is None and needle in verdict.error


def test_scorers_accept_json_lists():
    seed = np.array([(i, j) for i in range(4) for j in range(4)], float)
    assert score_min_max_distance(jsonable(seed), n=16, dim=2, best=MIN_MAX_BEST).correct
    assert score_autocorrelation_first([1, 2, 3], max_steps=600, best=AUTOCORRELATION_BEST).correct


# --- kernels against numpy references ---------------------------------------------------------

def brute_min_triangle(points):
    best = (np.inf, -1, -1, -1)
    n = len(points)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                (x1, y1), (x2, y2), (x3, y3) = points[i], points[j], points[k]
                area = 0.5 * abs((x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1))
                if area < best[0]:
                    best = (area, i, j, k)
    return best


def test_min_triangle_area_kernel_matches_references():
    rng = np.random.default_rng(0)
    for n in (3, 4, 11, 25):
        for _ in range(5):
            points = rng.random((n, 2))
            got = triangle_kernel.min_triangle_area(points)
            ref = triangle_kernel.min_triangle_area_numpy(points)
            assert got[1:] == ref[1:] and got[0] == pytest.approx(ref[0], rel=1e-12, abs=1e-300)
            assert got[0] == pytest.approx(brute_min_triangle(points)[0], rel=1e-12)
    assert triangle_kernel.min_triangle_area(np.zeros((2, 2)))[0] == np.inf


def test_distance_extremes_kernel_matches_references():
    rng = np.random.default_rng(1)
    for n in (2, 5, 16, 60):
        for dim in (1, 2, 3):
            points = rng.normal(size=(n, dim))
            got = distance_kernel.distance_extremes(points)
            ref = distance_kernel.distance_extremes_numpy(points)
            assert got[1:3] == ref[1:3] and got[4:] == ref[4:]
            assert got[0] == pytest.approx(ref[0], rel=1e-12) and got[3] == pytest.approx(ref[3], rel=1e-12)
            d2 = ((points[:, None] - points[None]) ** 2).sum(-1)
            off = d2[~np.eye(n, dtype=bool)]
            assert got[0] == pytest.approx(off.min(), rel=1e-12) and got[3] == pytest.approx(off.max(), rel=1e-12)


def test_check_circles_kernel_matches_numpy():
    rng = np.random.default_rng(2)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        centers = rng.random((n, 2))
        radii = rng.random(n) * rng.choice([0.01, 0.05, 0.2])
        got = circle_kernel.check_circles(centers, radii)
        ref = circle_kernel.check_circles_numpy(centers, radii)
        assert got == ref
