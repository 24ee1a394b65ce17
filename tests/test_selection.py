"""Parent selection strategies, checked statistically."""

import numpy as np
import pytest

from evomcp.tools import selection


def frequencies(strategy, scores, children=None, n=20000, **params):
    rng = np.random.default_rng(7)
    scores = np.asarray(scores, float)
    children = np.zeros(len(scores)) if children is None else np.asarray(children, float)
    picks = [selection.choose(rng, strategy, scores, children, **params) for _ in range(n)]
    return np.bincount(picks, minlength=len(scores)) / n


def test_uniform_and_power_law_alpha_zero_are_uniform():
    scores = [0.1, 0.5, 0.9, 2.0, 3.0]
    for freq in (frequencies("uniform", scores), frequencies("power_law", scores, alpha=0.0)):
        assert np.allclose(freq, 0.2, atol=0.02)


def test_power_law_large_alpha_picks_the_best():
    freq = frequencies("power_law", [0.1, 0.5, 3.0, 0.9], alpha=12.0)
    assert freq[2] > 0.99


def test_power_law_follows_rank():
    p = selection.power_law(np.array([1.0, 3.0, 2.0]), alpha=1.0)
    assert np.allclose(p, np.array([1 / 3, 1, 1 / 2]) / (1 / 3 + 1 + 1 / 2))


def test_weighted_prefers_good_and_childless_parents():
    p = selection.weighted(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    assert p[2] > p[1] > p[0]
    crowded = selection.weighted(np.array([3.0, 3.0]), np.array([9.0, 0.0]))
    assert crowded[1] == pytest.approx(10 * crowded[0])


def test_weighted_survives_equal_scores():
    p = selection.weighted(np.ones(4), np.zeros(4))
    assert np.allclose(p, 0.25)


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="uniform, power_law, weighted, hill_climbing, beam, best_of_n"):
        selection.probabilities("greedy", np.ones(2), np.zeros(2))
