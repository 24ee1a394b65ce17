"""Circle packing: place N disjoint circles in the unit square, maximising the sum of radii."""

import numpy as np

N_CIRCLES = 26


# EVOLVE-BLOCK-START
import time

TIME_BUDGET_S = 0.5  # wall-clock seconds for the whole search
SEED = 7
RESTARTS = 4
PENALTY_START = 20.0
PENALTY_GROWTH = 1.7
ROUNDS = 6
STEPS_PER_ROUND = 100
STEP_SIZE = 0.001
MOMENTUM = 0.9
JITTER = 0.02
SHRINK = 1 - 1e-12


def hex_centers(n, rng):
    """A hexagonal grid with enough points, shrunk into the square, the n most central kept."""
    rows = int(np.ceil(np.sqrt(n * 2 / np.sqrt(3))))
    cols = int(np.ceil(n / rows)) + 1
    points = []
    for row in range(rows):
        offset = 0.5 if row % 2 else 0.0
        for col in range(cols):
            points.append(((col + offset) / cols, (row + 0.5) / rows))
    points = np.array(points)
    order = np.argsort(np.linalg.norm(points - 0.5, axis=1))
    centers = 0.08 + 0.84 * points[order[:n]]
    return np.clip(centers + rng.normal(0.0, JITTER, centers.shape), 0.02, 0.98)


def ring_centers(n, rng):
    """One circle in the middle, rings around it; the outer ring takes the rest."""
    centers = [(0.5, 0.5)]
    rings = [(8, 0.23), (n - 9, 0.43)]
    for count, radius in rings:
        phase = rng.uniform(0.0, 2.0 * np.pi)
        for k in range(count):
            angle = 2.0 * np.pi * k / count + phase
            centers.append((0.5 + radius * np.cos(angle), 0.5 + radius * np.sin(angle)))
    return np.clip(np.array(centers[:n]), 0.02, 0.98)


def random_centers(n, rng):
    """Uniform random centers away from the walls."""
    return rng.uniform(0.05, 0.95, size=(n, 2))


def pair_distances(centers):
    diff = centers[:, None, :] - centers[None, :, :]
    return np.sqrt((diff ** 2).sum(axis=2))


def wall_distances(centers):
    return np.minimum.reduce([centers[:, 0], centers[:, 1], 1 - centers[:, 0], 1 - centers[:, 1]])


def penalty_gradient(centers, radii, weight):
    """Gradient of -sum(radii) + weight * (sum of squared overlaps and wall violations)."""
    n = len(centers)
    diff = centers[:, None, :] - centers[None, :, :]
    dist = np.sqrt((diff ** 2).sum(axis=2)) + np.eye(n) + 1e-12
    overlap = radii[:, None] + radii[None, :] - dist
    np.fill_diagonal(overlap, 0.0)
    overlap = np.maximum(overlap, 0.0)
    grad_r = -np.ones(n) + weight * 2.0 * overlap.sum(axis=1)
    unit = diff / dist[:, :, None]
    grad_c = -weight * 2.0 * (overlap[:, :, None] * unit).sum(axis=1)
    for axis in range(2):
        low = np.maximum(radii - centers[:, axis], 0.0)
        high = np.maximum(radii + centers[:, axis] - 1.0, 0.0)
        grad_r += weight * 2.0 * (low + high)
        grad_c[:, axis] += weight * 2.0 * (high - low)
    return grad_c, grad_r


def optimise(centers, deadline):
    """Penalty method: momentum gradient descent on centers and radii, the penalty growing each round."""
    radii = np.full(len(centers), 0.5 / np.sqrt(len(centers)))
    velocity_c = np.zeros_like(centers)
    velocity_r = np.zeros_like(radii)
    weight = PENALTY_START
    for _ in range(ROUNDS):
        for _ in range(STEPS_PER_ROUND):
            grad_c, grad_r = penalty_gradient(centers, radii, weight)
            velocity_c = MOMENTUM * velocity_c - STEP_SIZE * grad_c
            velocity_r = MOMENTUM * velocity_r - STEP_SIZE * grad_r
            centers = np.clip(centers + velocity_c, 0.01, 0.99)
            radii = np.maximum(radii + velocity_r, 0.0)
        weight *= PENALTY_GROWTH
        if time.perf_counter() > deadline:
            break
    return centers


def feasible_radii(centers):
    """Radii that fit: wall distances, then every overlapping pair shrunk in proportion until none overlaps."""
    radii = np.maximum(wall_distances(centers), 0.0)
    dist = pair_distances(centers)
    np.fill_diagonal(dist, np.inf)
    for _ in range(10 * len(centers)):
        excess = radii[:, None] + radii[None, :] - dist
        i, j = np.unravel_index(np.argmax(excess), excess.shape)
        if excess[i, j] <= 0:
            break
        scale = dist[i, j] / (radii[i] + radii[j])
        radii[i] *= scale
        radii[j] *= scale
    return radii


def grow(centers, radii, sweeps=3):
    """Grow each circle into the room its neighbours and the walls leave it, one circle at a time."""
    dist = pair_distances(centers)
    np.fill_diagonal(dist, np.inf)
    walls = wall_distances(centers)
    for _ in range(sweeps):
        for i in range(len(centers)):
            room = min(walls[i], float(np.min(dist[i] - radii)))
            radii[i] = max(radii[i], room)
    return radii


def make_valid(centers, radii):
    """Shrink whatever still overlaps or crosses a wall by rounding, so the checker finds no violation."""
    radii = np.minimum(radii, wall_distances(centers)) * SHRINK
    dist = pair_distances(centers)
    np.fill_diagonal(dist, np.inf)
    for _ in range(100 * len(centers)):
        excess = radii[:, None] + radii[None, :] - dist
        i, j = np.unravel_index(np.argmax(excess), excess.shape)
        if excess[i, j] <= 0:
            break
        scale = dist[i, j] / (radii[i] + radii[j]) * SHRINK
        radii[i] *= scale
        radii[j] *= scale
    return radii


def score(centers):
    radii = make_valid(centers, grow(centers, feasible_radii(centers)))
    return float(radii.sum()), radii


def construct_centers(n):
    """Several starts (hexagonal, rings, random), each optimised; the best packing's centers."""
    rng = np.random.default_rng(SEED)
    deadline = time.perf_counter() + TIME_BUDGET_S
    starts = [hex_centers, ring_centers, random_centers]
    best_total, best_centers = -1.0, None
    for attempt in range(RESTARTS):
        start = starts[attempt % len(starts)](n, rng)
        centers = optimise(start, deadline)
        total, _ = score(centers)
        if total > best_total:
            best_total, best_centers = total, centers
        if time.perf_counter() > deadline:
            break
    return best_centers


def compute_radii(centers):
    """The radii of the packing for these centers."""
    return score(centers)[1]
# EVOLVE-BLOCK-END


def run_packing():
    """Entry point called by the evaluator: returns centers (N, 2) and radii (N,)."""
    centers = construct_centers(N_CIRCLES)
    radii = compute_radii(centers)
    return centers, radii
