"""Asymmetric UCB over arms (models, operators or patch types), cost-aware, with persistent state.

Reward is asymmetric: a child no better than its parent (or no valid child) earns 0;
an improvement earns at least 0.5, plus up to 0.5 more by its size relative to the
largest improvement seen so far, shaped by an exponential so that rare big wins
count more than many crumbs. Old evidence decays by `decay` per update so the bandit follows a run whose
needs change. Pulls still in flight count in the exploration term, so parallel
workers do not all pile onto the arm that currently looks best. Unseen arms go first.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, Field


class ArmStats(BaseModel):
    weight: float = 0.0  # decayed number of finished pulls
    reward: float = 0.0  # decayed sum of shaped rewards
    pulls: int = 0
    pending: int = 0
    cost_usd: float = 0.0
    wins: int = 0


class BanditState(BaseModel):
    arms: dict[str, ArmStats] = Field(default_factory=dict)
    max_improvement: float = 0.0
    updates: int = 0


class Bandit:
    def __init__(self, state: BanditState | None = None, *, exploration: float = 0.5, decay: float = 0.98,
                 shaping: float = 2.0, cost_weight: float = 0.2):
        self.state = state or BanditState()
        self.exploration = exploration
        self.decay = decay
        self.shaping = shaping
        self.cost_weight = cost_weight

    def arm(self, name: str) -> ArmStats:
        return self.state.arms.setdefault(name, ArmStats())

    def scores(self, arms: list[str]) -> dict[str, float]:
        """UCB value of each arm (inf for arms never pulled), minus a cost penalty."""
        stats = [self.arm(a) for a in arms]
        total = sum(s.weight + s.pending for s in stats) + 1.0
        costs = np.array([s.cost_usd / s.pulls if s.pulls else 0.0 for s in stats])
        top_cost = costs.max() if len(costs) and costs.max() > 0 else 1.0
        out = {}
        for name, s, cost in zip(arms, stats, costs):
            seen = s.weight + s.pending
            if s.pulls == 0 and s.pending == 0:
                out[name] = math.inf
                continue
            mean = s.reward / s.weight if s.weight > 0 else 0.0
            bonus = self.exploration * math.sqrt(math.log(total) / max(seen, 1e-9))
            out[name] = mean + bonus - self.cost_weight * cost / top_cost
        return out

    def choose(self, arms: list[str], rng: np.random.Generator) -> str:
        if not arms:
            raise ValueError("no arms to choose from")
        scores = self.scores(arms)
        best = max(scores.values())
        tied = [a for a in arms if scores[a] == best]
        choice = tied[int(rng.integers(len(tied)))]
        self.arm(choice).pending += 1
        return choice

    def shaped(self, improvement: float) -> float:
        if improvement <= 0 or not math.isfinite(improvement):
            return 0.0
        self.state.max_improvement = max(self.state.max_improvement, improvement)
        x = improvement / self.state.max_improvement
        return 0.5 + 0.5 * math.expm1(self.shaping * x) / math.expm1(self.shaping)

    def update(self, arm: str, improvement: float | None, cost_usd: float = 0.0) -> float:
        """Close one pull of `arm`: improvement is child minus parent score (None: no valid child)."""
        reward = self.shaped(improvement) if improvement is not None else 0.0
        for stats in self.state.arms.values():
            stats.weight *= self.decay
            stats.reward *= self.decay
        s = self.arm(arm)
        s.pending = max(0, s.pending - 1)
        s.weight += 1.0
        s.reward += reward
        s.pulls += 1
        s.cost_usd += cost_usd
        s.wins += int(reward > 0)
        self.state.updates += 1
        return reward

    def release(self, arm: str) -> None:
        """Forget a pull that never happened (e.g. the run stopped before the call)."""
        s = self.arm(arm)
        s.pending = max(0, s.pending - 1)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {"pulls": s.pulls, "pending": s.pending, "wins": s.wins, "cost_usd": s.cost_usd,
                   "mean_reward": s.reward / s.weight if s.weight else 0.0}
            for name, s in self.state.arms.items()
        }
