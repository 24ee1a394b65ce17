"""What a run's task needs said at its start: the peer settings read from its folder, and what the offline
operator can do for it."""

from __future__ import annotations

from ..evaluators.task import Task
from .perturb import offline_limits


def task_notes(task: Task) -> dict[str, str]:
    """`settings`: the settings read from the task folder and where; `offline_operator`: why `perturb` alone
    makes little or no progress (and how to give a model). Absent when there is nothing to say."""
    notes: dict[str, str] = {}
    if task.notes:
        notes["settings"] = "; ".join(task.notes)
    limits = offline_limits(task.initial_code, task.language)
    if limits:
        notes["offline_operator"] = limits
    return notes
