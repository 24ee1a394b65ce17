"""The built-in tasks, one package each: its definition, trusted scorer, Numba kernel and seed together
(tasks/base.py says what a built-in task is)."""

from __future__ import annotations

from . import autocorrelation_first, circle_packing, heilbronn_triangle, min_max_distance, tsp_berlin52
from .base import BuiltinTask

BUILTIN_TASKS: dict[str, BuiltinTask] = {
    t.name: t
    for t in (
        circle_packing.builtin(26, 2.6359830849),
        circle_packing.builtin(32, 2.9395727712),
        heilbronn_triangle.builtin(11, 0.036529889880030156),
        min_max_distance.builtin(16, 12.88926611203463),
        autocorrelation_first.builtin(1.5053),
        tsp_berlin52.builtin(),
    )
}
