"""Parent selection strategies: pure functions from scores and children counts to probabilities.

`scores` are the combined scores of the candidate parents (higher is better) and
`children` how many children each already has, counting children still in flight,
so that parallel workers spread over parents instead of piling onto one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Literal

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


def performance(scores: np.ndarray, lam: float = 10.0) -> np.ndarray:
    """sigmoid(lam * (score - median) / MAD): the half of `weighted` that depends on the scores only."""
    median = np.median(scores)
    mad = np.median(np.abs(scores - median))
    if not mad > 0:
        spread = np.std(scores)
        mad = spread if spread > 0 else 1.0
    z = np.clip(lam * (scores - median) / mad, -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-z))


def weighted(scores: np.ndarray, children: np.ndarray, lam: float = 10.0) -> np.ndarray:
    """sigmoid(lam * (score - median) / MAD) times 1 / (1 + children), normalised."""
    weights = performance(scores, lam) * (1.0 / (1.0 + children))
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


class _Memo:
    """What selection derives from a scores array (performance term, CDFs, argmax), kept while the array lives.

    Population.pool hands out the same read-only scores array until that pool changes (a new result, a
    move), so memoising on the array is memoising on the pool's version: the medians run once per change
    and a draw is O(log n). Only read-only arrays that own their data are memoised, since nothing can
    change those. An entry goes when its array is freed (weakref callback), and the identity check
    guards against a new array that reuses a freed one's id.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, dict[Any, Any]]] = {}

    def get(self, array: Any, key: Any, compute: Callable[[], Any]) -> Any:
        if not isinstance(array, np.ndarray) or array.flags.writeable or array.base is not None:
            return compute()
        entry = self._entries.get(id(array))
        if entry is None or entry[0]() is not array:
            entry = (weakref.ref(array, lambda ref, k=id(array): self._forget(k, ref)), {})
            self._entries[id(array)] = entry
        if key not in entry[1]:
            entry[1][key] = compute()
        return entry[1][key]

    def _forget(self, key: int, ref: weakref.ref) -> None:
        if key in self._entries and self._entries[key][0] is ref:
            del self._entries[key]


_memo = _Memo()
_TRIALS = 32  # rejection-sampling proposals per weighted draw before falling back to the full weights


def _draw(rng: np.random.Generator, cumulative: np.ndarray) -> int:
    """Inverse-CDF draw (rng.choice(p=...) validates and copies, slower on big pools)."""
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(cumulative) - 1))


def _draw_weighted(rng: np.random.Generator, perf: np.ndarray, cumulative: np.ndarray, children: np.ndarray) -> int:
    """Draw i with p_i proportional to perf_i / (1 + children_i) without an O(n) pass.

    Rejection sampling: propose i from the cached CDF of perf, accept it with probability
    1 / (1 + children_i) (children >= 0); the first accepted proposal has exactly the target
    distribution. If all proposals are rejected (most parents crowded), draw from the full weights,
    which keeps the distribution exact.
    """
    proposals = np.searchsorted(cumulative, rng.random(_TRIALS) * cumulative[-1], side="right")
    proposals = np.minimum(proposals, len(cumulative) - 1)
    accepted = np.flatnonzero(rng.random(_TRIALS) * (1.0 + children[proposals]) < 1.0)
    if len(accepted):
        return int(proposals[accepted[0]])
    return _draw(rng, np.cumsum(perf * (1.0 / (1.0 + children))))


def choose(rng: np.random.Generator, strategy: str, scores, children, generations=None, **params) -> int:
    """Draw one index, with the distribution of `probabilities`.

    What depends on the scores alone is memoised per scores array (see _Memo): on a population's pools,
    until the pool changes, a weighted draw is O(log n), hill_climbing and (mostly) beam O(1), and
    power_law reuses its rank weights.
    """
    scores = np.asarray(scores, float)
    n = len(scores)
    if strategy == "uniform":
        return int(rng.integers(n))
    if strategy == "power_law" and n > 1:
        # draw a rank from p(r) ~ r^-alpha, then find the program of that rank with a partial sort
        alpha = float(params.get("alpha", 1.0))
        ranks = _memo.get(scores, ("ranks", alpha), lambda: np.cumsum(np.arange(1, n + 1, dtype=float) ** -alpha))
        rank = _draw(rng, ranks)
        return int(np.argpartition(-scores, rank)[rank])
    if strategy == "weighted":
        lam = float(params.get("lam", 10.0))

        def performance_cdf() -> tuple[np.ndarray, np.ndarray]:
            perf = performance(scores, lam)
            return perf, np.cumsum(perf)

        perf, cumulative = _memo.get(scores, ("weighted", lam), performance_cdf)
        return _draw_weighted(rng, perf, cumulative, np.asarray(children, float))
    if strategy == "hill_climbing":
        return _memo.get(scores, "argmax", lambda: int(np.argmax(scores)))
    if strategy == "beam":
        best, width = _memo.get(scores, "argmax", lambda: int(np.argmax(scores))), params.get("width", 4)
        if children[best] < width:  # the best is open: it is the best open one (earliest of equals, too)
            return best
    if strategy == "best_of_n" and generations is not None:
        return _memo.get(generations, "seed", lambda: int(np.argmax(best_of_n(np.asarray(generations, float)))))
    gens = None if generations is None else np.asarray(generations, float)
    p = probabilities(strategy, scores, np.asarray(children, float), gens, **params)
    if strategy in ("hill_climbing", "beam", "best_of_n"):
        return int(np.argmax(p))  # one-hot
    return _draw(rng, np.cumsum(p))
