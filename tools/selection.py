"""Parent selection strategies: pure functions from scores and children counts to probabilities.

`scores` are the combined scores of the candidate parents (higher is better) and
`children` how many children each already has, counting children still in flight,
so that parallel workers spread over parents instead of piling onto one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Strategy = Literal["uniform", "power_law", "weighted", "hill_climbing", "beam", "best_of_n"]
STRATEGIES: tuple[str, ...] = ("uniform", "power_law", "weighted", "hill_climbing", "beam", "best_of_n")


def uniform(scores: np.ndarray) -> np.ndarray:
    return np.full(len(scores), 1.0 / len(scores))


def power_law(scores: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """p_i proportional to rank_i^-alpha, rank 1 being the best score."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    weights = ranks ** -float(alpha)
    return weights / weights.sum()


def weighted(scores: np.ndarray, children: np.ndarray, lam: float = 10.0) -> np.ndarray:
    """sigmoid(lam * (score - median) / MAD) times 1 / (1 + children), normalised."""
    median = np.median(scores)
    mad = np.median(np.abs(scores - median))
    if not mad > 0:
        spread = np.std(scores)
        mad = spread if spread > 0 else 1.0
    z = np.clip(lam * (scores - median) / mad, -60.0, 60.0)
    performance = 1.0 / (1.0 + np.exp(-z))
    novelty = 1.0 / (1.0 + children)
    weights = performance * novelty
    return weights / weights.sum()


def _one_hot(n: int, index: int) -> np.ndarray:
    p = np.zeros(n)
    p[index] = 1.0
    return p


def hill_climbing(scores: np.ndarray) -> np.ndarray:
    """Always the best (the earliest of equals)."""
    return _one_hot(len(scores), int(np.argmax(scores)))


def beam(scores: np.ndarray, children: np.ndarray, width: int = 4) -> np.ndarray:
    """The best program that has fewer than `width` children; the best when all have that many."""
    open_slots = np.flatnonzero(children < width)
    if len(open_slots) == 0:
        return _one_hot(len(scores), int(np.argmax(scores)))
    return _one_hot(len(scores), int(open_slots[np.argmax(scores[open_slots])]))


def best_of_n(generations: np.ndarray) -> np.ndarray:
    """Always the seed: n independent changes of the initial program."""
    seeds = np.flatnonzero(generations == 0)
    return _one_hot(len(generations), int(seeds[0] if len(seeds) else np.argmin(generations)))


def probabilities(strategy: str, scores: np.ndarray, children: np.ndarray, generations: np.ndarray | None = None,
                  *, alpha: float = 1.0, lam: float = 10.0, width: int = 4) -> np.ndarray:
    if strategy == "uniform":
        return uniform(scores)
    if strategy == "power_law":
        return power_law(scores, alpha)
    if strategy == "weighted":
        return weighted(scores, children, lam)
    if strategy == "hill_climbing":
        return hill_climbing(scores)
    if strategy == "beam":
        return beam(scores, children, width)
    if strategy == "best_of_n":
        return best_of_n(np.zeros(len(scores)) if generations is None else generations)
    raise ValueError(f"unknown selection strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


def choose(rng: np.random.Generator, strategy: str, scores, children, generations=None, **params) -> int:
    """Draw one index. Same distribution as `probabilities`, with O(n) shortcuts for large pools."""
    scores = np.asarray(scores, float)
    if strategy == "power_law" and len(scores) > 1:
        # draw a rank from p(r) ~ r^-alpha, then find the program of that rank with a partial sort
        n = len(scores)
        weights = np.arange(1, n + 1, dtype=float) ** -float(params.get("alpha", 1.0))
        rank = int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), side="right"))
        rank = min(rank, n - 1)
        return int(np.argpartition(-scores, rank)[rank])
    if strategy == "uniform":
        return int(rng.integers(len(scores)))
    gens = None if generations is None else np.asarray(generations, float)
    p = probabilities(strategy, scores, np.asarray(children, float), gens, **params)
    if strategy in ("hill_climbing", "beam", "best_of_n"):
        return int(np.argmax(p))  # one-hot
    cumulative = np.cumsum(p)  # inverse-CDF draw: rng.choice(p=...) validates and copies, slower on big pools
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(p) - 1))
