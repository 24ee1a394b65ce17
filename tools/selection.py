"""Parent selection strategies: pure functions from scores and children counts to probabilities.

`scores` are the combined scores of the candidate parents (higher is better) and
`children` how many children each already has, counting children still in flight,
so that parallel workers spread over parents instead of piling onto one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Strategy = Literal["uniform", "power_law", "weighted"]
STRATEGIES: tuple[str, ...] = ("uniform", "power_law", "weighted")


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


def probabilities(strategy: str, scores: np.ndarray, children: np.ndarray, *, alpha: float = 1.0,
                  lam: float = 10.0) -> np.ndarray:
    if strategy == "uniform":
        return uniform(scores)
    if strategy == "power_law":
        return power_law(scores, alpha)
    if strategy == "weighted":
        return weighted(scores, children, lam)
    raise ValueError(f"unknown selection strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


def choose(rng: np.random.Generator, strategy: str, scores: np.ndarray, children: np.ndarray, **params) -> int:
    p = probabilities(strategy, np.asarray(scores, float), np.asarray(children, float), **params)
    return int(rng.choice(len(p), p=p))
