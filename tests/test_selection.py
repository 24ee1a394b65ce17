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


def test_weighted_draws_match_probabilities_when_parents_are_crowded():
    """The O(log n) draw (rejection on 1 / (1 + children)) and its fallback keep the exact distribution."""
    scores = np.array([1.0, 2.0, 3.0, 3.5, 4.0, 0.5])
    for children in ([0, 3, 0, 50, 1000, 1], [400, 900, 1000, 700, 1000, 300]):  # mostly accepted, mostly not
        expected = selection.probabilities("weighted", scores, np.asarray(children, float))
        assert np.allclose(frequencies("weighted", scores, children), expected, atol=0.015)


def frozen(values):
    array = np.array(values, float)
    array.flags.writeable = False
    return array


def test_memo_follows_the_array_not_its_id():
    """Read-only arrays are memoised; a new array that reuses a freed one's id, or a writable one changed
    in place, is not answered from the memo."""
    rng = np.random.default_rng(0)
    for k in range(40):  # CPython often hands a freed array's id to the next one
        scores = frozen(np.eye(5)[k % 5])
        assert selection.choose(rng, "hill_climbing", scores, np.zeros(5)) == k % 5
        assert selection.choose(rng, "beam", scores, np.zeros(5)) == k % 5
        del scores
    scores = np.zeros(5)
    assert selection.choose(rng, "hill_climbing", scores, np.zeros(5)) == 0
    scores[3] = 1.0
    assert selection.choose(rng, "hill_climbing", scores, np.zeros(5)) == 3


def test_draws_on_population_pools_follow_the_population_as_it_changes():
    """Pools are cached (and selection memoises on them) until they change: after pending children,
    results, failures and moves, draws on the live pools match a fresh index built from the same rows."""
    from evomcp.tools.population import Population

    rows = [[i, None if i == 1 else 1, i % 2, 0 if i == 1 else 1, "evaluated", True, float(i)] for i in range(1, 13)]
    live = Population.from_rows(tuple(r) for r in rows)
    rng = np.random.default_rng(3)

    def check():
        fresh = Population.from_rows(tuple(r) for r in rows)
        for island in (0, 1):
            ids, scores, children, generations = live.pool(island)
            ref_ids, ref_scores, ref_children, ref_generations = fresh.pool(island)
            assert ids.tolist() == ref_ids.tolist() and children.tolist() == ref_children.tolist()
            for strategy in ("weighted", "power_law"):
                expected = selection.probabilities(strategy, np.array(ref_scores), np.array(ref_children, float))
                picks = [selection.choose(rng, strategy, scores, children.astype(float)) for _ in range(4000)]
                assert np.allclose(np.bincount(picks, minlength=len(ids)) / 4000, expected, atol=0.03), strategy
            for strategy in ("hill_climbing", "beam", "best_of_n"):
                expected = selection.probabilities(strategy, np.array(ref_scores), np.array(ref_children, float),
                                                   np.array(ref_generations, float)).argmax()
                assert selection.choose(rng, strategy, scores, children, generations, width=2) == expected

    check()
    for i in range(13, 19):  # pending children of the best of island 0: its weight falls, beam moves on
        rows.append([i, 12, 0, 2, "pending", False, None])
        live.add(i, 12, 0, 2)
    check()
    rows[12][4] = "running"
    live.set_status(13, "running")
    rows[12][4:] = ["evaluated", True, 30.0]  # a new best
    live.set_result(13, "evaluated", True, 30.0)
    rows[13][4] = "failed"
    live.set_result(14, "failed", False, None)
    check()
    for row in rows:  # the best two of island 0 migrate
        if row[0] in (13, 12):
            row[2] = 1
    live.move([(13, 0, 1), (12, 0, 1)])
    check()
    rows[0][6] = 100.0  # the seed (island 1) is re-scored: now the best of its island
    live.set_result(1, "evaluated", True, 100.0)
    check()
