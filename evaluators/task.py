"""Tasks: what is evolved and how it is scored.

A task is either built in (a seed program whose returned data a trusted scorer
checks) or a task directory following the evaluation contract:

- `initial.py`: the seed program, with EVOLVE-BLOCK-START / EVOLVE-BLOCK-END markers;
- `evaluate.py`: either `def evaluate(program_path) -> dict` (detected by a top-level
  function named `evaluate`) or a script called with `--program_path P --results_dir D`
  that writes `D/metrics.json` and `D/correct.json`;
- optional `task.toml`: name, description, language, timeout_s, memory_mb, target_score.
"""

from __future__ import annotations

import ast
import tomllib
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from .verdict import Verdict

TASKS_DIR = Path(__file__).with_name("tasks")
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 4096


class TaskError(ValueError):
    """A task name or directory that cannot be used; the message says what to fix."""


class Task(BaseModel):
    name: str
    description: str
    source: str = Field(description="built-in task name or absolute path of the task directory")
    kind: Literal["builtin", "evaluate_fn", "script"]
    language: str = "python"
    initial_code: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    target_score: float | None = None
    entry: str | None = None
    evaluate_path: str | None = None

    @property
    def file_suffix(self) -> str:
        return {"python": ".py"}.get(self.language, f".{self.language}")


class BuiltinTask(BaseModel):
    name: str
    summary: str
    description: str
    seed_file: str
    seed_replacements: dict[str, str] = {}
    entry: str
    target_score: float
    timeout_s: float = 30.0
    scorer: Callable[[Any], Verdict]

    def task(self) -> Task:
        code = (TASKS_DIR / self.seed_file).read_text()
        for old, new in self.seed_replacements.items():
            code = code.replace(old, new)
        return Task(
            name=self.name,
            description=self.description,
            source=self.name,
            kind="builtin",
            initial_code=code,
            timeout_s=self.timeout_s,
            target_score=self.target_score,
            entry=self.entry,
        )


def _circle_packing(n: int, best: float) -> BuiltinTask:
    from .scoring import score_circle_packing

    return BuiltinTask(
        name=f"circle_packing_{n}",
        summary=f"pack {n} disjoint circles in the unit square, maximise the sum of radii (best known {best})",
        description=(
            f"Pack {n} disjoint circles inside the unit square [0,1]x[0,1] so that the sum of their radii is "
            f"as large as possible. The program must define run_packing() returning (centers, radii): centers "
            f"an array of shape ({n}, 2), radii an array of shape ({n},). The checker has zero tolerance: every "
            f"circle must satisfy r <= x <= 1 - r and r <= y <= 1 - r, and every pair r_i + r_j <= |c_i - c_j|. "
            f"combined_score is the sum of radii of a valid packing; an invalid one scores nothing. The best "
            f"known sum is {best}. Good packings are irregular: mixed circle sizes, larger circles near the "
            f"middle or corners, smaller ones filling gaps; numeric optimisation of centers and radii (for "
            f"example a penalty method or a linear program for radii given centers) helps. numpy and scipy "
            f"may be used if installed; the program must finish within the time limit."
        ),
        seed_file="circle_packing/initial.py",
        seed_replacements={"N_CIRCLES = 26": f"N_CIRCLES = {n}"},
        entry="run_packing",
        target_score=best,
        scorer=partial(score_circle_packing, n=n),
    )


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    t.name: t
    for t in (
        _circle_packing(26, 2.6359830849),
    )
}


def _evaluate_kind(evaluate_path: Path) -> Literal["evaluate_fn", "script"]:
    try:
        tree = ast.parse(evaluate_path.read_text(), filename=str(evaluate_path))
    except SyntaxError as exc:
        raise TaskError(f"{evaluate_path} does not parse: {exc}") from None
    has_fn = any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "evaluate" for node in tree.body
    )
    return "evaluate_fn" if has_fn else "script"


def load_task_dir(path: Path) -> Task:
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise TaskError(
            f"task {str(path)!r} is neither a built-in task nor a directory; "
            f"call list_tasks for the built-in names, or pass the path of a task directory"
        )
    meta: dict[str, Any] = {}
    toml_path = path / "task.toml"
    if toml_path.exists():
        try:
            meta = tomllib.loads(toml_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise TaskError(f"{toml_path} is not valid TOML: {exc}") from None
    language = str(meta.get("language", "python"))
    initial = next((p for p in sorted(path.glob("initial.*")) if p.is_file()), None)
    if initial is None:
        raise TaskError(f"task directory {path} has no initial.py (the seed program with EVOLVE-BLOCK markers)")
    evaluate_path = path / "evaluate.py"
    if not evaluate_path.is_file():
        raise TaskError(f"task directory {path} has no evaluate.py")
    description = meta.get("description")
    if description is None and (path / "README.md").exists():
        description = (path / "README.md").read_text()[:4000]
    try:
        return Task(
            name=str(meta.get("name", path.name)),
            description=str(description or f"Improve the program so that evaluate.py in {path.name} scores it higher."),
            source=str(path),
            kind=_evaluate_kind(evaluate_path),
            language=language,
            initial_code=initial.read_text(),
            timeout_s=float(meta.get("timeout_s", meta.get("timeout", DEFAULT_TIMEOUT_S))),
            memory_mb=int(meta.get("memory_mb", DEFAULT_MEMORY_MB)),
            target_score=meta.get("target_score"),
            evaluate_path=str(evaluate_path),
        )
    except (ValueError, TypeError) as exc:
        raise TaskError(f"{toml_path} has a bad value: {exc}") from None


def resolve_task(name_or_path: str) -> Task:
    if name_or_path in BUILTIN_TASKS:
        return BUILTIN_TASKS[name_or_path].task()
    return load_task_dir(Path(name_or_path))


def builtin_scorer(task: Task) -> Callable[[Any], Verdict]:
    return BUILTIN_TASKS[task.name].scorer
