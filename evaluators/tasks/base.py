"""What a built-in task is: its text, its seed program, its entry function and its trusted scorer.

Each built-in task is a package of this folder holding all of it together: the definition (its
`__init__.py`), the scorer, the Numba kernel where it has one, and the seed (`initial.py`, or
another language's file). The drawing of a solution is named here (`drawing`); server/drawings.py
draws it."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel

from ...results import Verdict

TASKS_DIR = Path(__file__).parent
Drawing = Literal["circles", "points_in_triangle", "points", "step_function"]


class BuiltinTask(BaseModel):
    name: str
    summary: str
    description: str
    seed_file: str
    seed_replacements: dict[str, str] = {}
    entry: str
    target_score: float
    timeout_s: float = 30.0
    language: str = "python"
    scorer: Callable[[Any], Verdict]
    drawing: Drawing | None = None  # how server/drawings.py draws a solution from its private metrics
    kernel: str | None = None  # the module of its Numba kernel, if it has one

    def warm_up(self) -> None:
        """Compile (or load from the cache) its Numba kernel: the scorer process does it before it says ready."""
        if self.kernel is not None:
            import_module(self.kernel).warm_up()

    def task(self) -> Any:
        """The task as runs use it (evaluators.task.Task)."""
        from .. import languages
        from ..task import Task

        code = (TASKS_DIR / self.seed_file).read_text()
        for old, new in self.seed_replacements.items():
            code = code.replace(old, new)
        commands = languages.commands(self.language)
        return Task(
            name=self.name,
            description=self.description,
            source=self.name,
            kind="builtin",
            language=self.language,
            check_cmd=commands["check"],
            build_cmd=commands["build"],
            run_cmd=commands["run"],
            initial_code=code,
            timeout_s=self.timeout_s,
            target_score=self.target_score,
            entry=self.entry,
        )
