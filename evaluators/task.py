"""Tasks: what is evolved and how it is scored.

A task is either built in (a seed program whose returned data a trusted scorer
checks) or a task directory following the evaluation contract:

- `initial.py`: the seed program, with EVOLVE-BLOCK-START / EVOLVE-BLOCK-END markers;
- `evaluate.py`, one of three shapes (told apart statically, without running it):
  - the split contract (detected by a top-level `ENTRY = "name"` string and a top-level
    `def score(data)`): the candidate's function ENTRY() runs in the sandbox and returns JSON
    data; `score(data) -> dict` runs in a separate sandboxed child that never loads the
    candidate's code, so the candidate cannot touch its own score;
  - `def evaluate(program_path) -> dict` (a top-level function named `evaluate`): runs in the
    candidate's sandboxed process, since it imports the candidate;
  - a script called with `--program_path P --results_dir D` that writes `D/metrics.json` and
    `D/correct.json` (also in the candidate's process);
- optional `task.toml`: name, description, language, timeout_s, memory_mb, target_score, and `evolve`
  (a function or class whose definition becomes the EVOLVE-BLOCK of a seed without markers); for a
  program in another language (`language = "cpp"`, or a seed such as initial.rs), `check`, `build`,
  `run` and `suffix` override that language's commands (evaluators/languages.py). Under the split
  contract such a program is built and run in the sandbox and `score(data)` gets what it printed.

Folders written for OpenEvolve (`initial_program.py`, `evaluator.py`, `config.yaml`) and ShinkaEvolve (a
script evaluate.py, its run script and YAML config) are read with their settings (peer_settings.py);
task.toml wins over them. `Task.trusted_scores` says which kinds compute scores outside the candidate's process.
"""

from __future__ import annotations

import ast
import keyword
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from . import languages
from .peer_settings import PeerSettings, read_openevolve, read_shinka, wrap_in_markers
from .sandbox import links_leading_out
from .task_imports import missing_imports
from .tasks import BUILTIN_TASKS, BuiltinTask  # noqa: F401 - the registry, re-exported

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 4096


TaskKind = Literal["builtin", "split", "evaluate_fn", "script"]
# Kinds whose scores are computed by a process that never runs candidate code: a built-in task's
# trusted scorer, a split-contract task's score(data) child. The others score in the candidate's process.
TRUSTED_KINDS: frozenset[str] = frozenset({"builtin", "split"})
ENTRY_VARIABLE = "ENTRY"  # evaluate.py of the split contract: ENTRY = "<the candidate's entry function>"
SCORE_FUNCTION = "score"  # evaluate.py of the split contract: def score(data) -> dict


class TaskError(ValueError):
    """A task name or directory that cannot be used; the message says what to fix."""


class Task(BaseModel):
    name: str
    description: str
    source: str = Field(description="built-in task name or absolute path of the task directory")
    kind: TaskKind
    language: str = "python"
    initial_code: str
    check_cmd: list[str] | None = Field(None, description="a non-Python program's fast syntax check (argv with "
                                        "{source}, {binary}, {workdir}), run sandboxed before evaluation")
    build_cmd: list[str] | None = Field(None, description="builds a non-Python program into {binary}, in the sandbox")
    run_cmd: list[str] | None = Field(None, description="runs a built program; its stdout is the data scored")
    suffix: str | None = Field(None, description="the program file's suffix, if not the language's")
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    target_score: float | None = None
    entry: str | None = None
    evaluate_path: str | None = None
    seed_name: str = "initial.py"
    framework: Literal["openevolve", "shinka"] | None = Field(None, description="whose folder layout it follows")
    cascade_thresholds: list[float] | None = Field(
        None, description="OpenEvolve's cascade: evaluate_stage1, 2, 3 of the evaluator, each next one only while "
                          "the metrics so far reach its threshold; timeout_s applies per stage")
    cascade_stages: int = 1
    fitness: Literal["combined_score", "average"] = Field(
        "combined_score", description="'average': metrics without combined_score are scored by the mean of their "
                                      "numeric values other than feature_dimensions (OpenEvolve's rule)")
    feature_dimensions: list[str] = Field(default_factory=list)
    run_defaults: dict[str, Any] = Field(default_factory=dict, description="run config the task's settings imply; "
                                         "a run's own config wins")
    notes: list[str] = Field(default_factory=list, description="settings read from the folder, and where")

    @property
    def files(self) -> str:
        """The task's files as the folder names them, for messages ("initial_program.py or evaluator.py")."""
        if self.kind == "builtin":
            return f"the built-in task {self.name}"
        return f"{self.seed_name} or {Path(self.evaluate_path or 'evaluate.py').name}"

    @property
    def trusted_scores(self) -> bool:
        """Whether scores are computed outside the candidate's process (built-in and split-contract tasks)."""
        return self.kind in TRUSTED_KINDS

    @property
    def job_kind(self) -> Literal["entry", "evaluate_fn", "script"]:
        """What a sandboxed child runs for this task (the child knows jobs, not tasks): the candidate's entry
        function, which returns data scored outside it, or the task's evaluate.py (a function or a script)."""
        return "entry" if self.trusted_scores else self.kind  # type: ignore[return-value]

    @property
    def has_folder(self) -> bool:
        """Whether the task is a folder the sandbox copies (every task but a built-in one)."""
        return self.kind != "builtin"

    @property
    def file_suffix(self) -> str:
        return self.suffix or languages.get(self.language).suffix


def _entry_value(node: ast.stmt) -> ast.expr | None:
    """The value assigned to ENTRY by a top-level statement, if it is one (ENTRY = ... or ENTRY: str = ...)."""
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == ENTRY_VARIABLE for t in node.targets):
        return node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == ENTRY_VARIABLE:
        return node.value
    return None


def _evaluate_contract(evaluate_path: Path) -> tuple[Literal["split", "evaluate_fn", "script"], str | None]:
    """Which contract evaluate.py follows, read from its syntax tree (nothing of it runs), and the split
    contract's entry function name."""
    try:
        tree = ast.parse(evaluate_path.read_text(), filename=str(evaluate_path))
    except SyntaxError as exc:
        raise TaskError(f"{evaluate_path} does not parse: {exc}") from None
    functions = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    entries = [value for value in map(_entry_value, tree.body) if value is not None]
    if entries:
        value = entries[-1]
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.isidentifier()
                and not keyword.iskeyword(value.value)):
            raise TaskError(f"{evaluate_path}: {ENTRY_VARIABLE} must be a string literal naming the candidate's "
                            f"entry function, for example {ENTRY_VARIABLE} = \"run\"")
        score = functions.get(SCORE_FUNCTION)
        if not isinstance(score, ast.FunctionDef):
            raise TaskError(
                f"{evaluate_path} sets {ENTRY_VARIABLE} = {value.value!r} (the split contract) but defines no "
                f"top-level `def {SCORE_FUNCTION}(data)` (a plain function, not async) to score the data "
                f"{value.value}() returns")
        return "split", value.value
    return ("evaluate_fn" if "evaluate" in functions else "script"), None


SEED_NAMES = ("initial", "initial_program")  # evomcp's and ShinkaEvolve's; OpenEvolve's
EVALUATOR_NAMES = ("evaluate.py", "evaluator.py")


def _no_markers(seed: Path, code: str, settings: PeerSettings, language: str = "python") -> str:
    """Why a seed without EVOLVE-BLOCK markers cannot be evolved, and the fix."""
    mark = languages.comment(language)
    if not languages.is_python(language):
        return (f"{seed} has no EVOLVE-BLOCK: nothing in it is marked as code that may change. Fix: put a line "
                f"'{mark} EVOLVE-BLOCK-START' before the code that may change and '{mark} EVOLVE-BLOCK-END' after it")
    try:
        names = [n.name for n in ast.parse(code).body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    except (SyntaxError, ValueError):
        names = []
    example = names[0] if names else "<function>"
    peer = " (ShinkaEvolve refuses such a program too: its patches find no EVOLVE-BLOCK region)" \
        if settings.framework == "shinka" else ""
    return (f"{seed} has no EVOLVE-BLOCK: nothing in it is marked as code that may change{peer}. Fix: put a line "
            f"'# EVOLVE-BLOCK-START' before the code that may change and '# EVOLVE-BLOCK-END' after it, or name a "
            f"function or class of it in task.toml, evolve = \"{example}\", to make its definition the block "
            f"(what ShinkaEvolve's add_evolve_markers does)"
            + (f"; it defines {', '.join(names[:8])}" if names else ""))


def _seed_code(seed: Path, meta: dict[str, Any], settings: PeerSettings,
               language: str = "python") -> tuple[str, list[str]]:
    """The seed program, with markers around the definition task.toml's `evolve` or a ShinkaEvolve config
    names when it has none; and a note saying so."""
    code = seed.read_text()
    if "EVOLVE-BLOCK-START" in code:
        return code, []
    evolve = meta.get("evolve")
    around = (evolve, evolve) if isinstance(evolve, str) else settings.evolve_around
    if around is None or not languages.is_python(language):
        raise TaskError(_no_markers(seed, code, settings, language))
    wrapped = wrap_in_markers(code, *around)
    if wrapped is None:
        raise TaskError(f"{seed} has no EVOLVE-BLOCK and no function or class named "
                        f"{' or '.join(dict.fromkeys(around))} to make the block; " + _no_markers(seed, code, settings))
    where = "task.toml's evolve" if isinstance(evolve, str) else "the ShinkaEvolve config's add_evolve_markers"
    return wrapped, [f"{seed.name} has no EVOLVE-BLOCK markers: the definition of {around[0]} is the block "
                     f"({where})"]


def _peer_settings(path: Path, kind: str, seed: Path, evaluate_path: Path) -> PeerSettings:
    if kind == "evaluate_fn" and (evaluate_path.name == "evaluator.py" or seed.stem == "initial_program"
                                  or (path / "config.yaml").is_file()):
        return read_openevolve(path)
    if kind == "script":
        return read_shinka(path)
    return PeerSettings()


def _cascade_stages(evaluate_path: Path) -> int:
    """How many of evaluate_stage1..3 the evaluator defines (0 without evaluate_stage1)."""
    try:
        names = {n.name for n in ast.parse(evaluate_path.read_text()).body if isinstance(n, ast.FunctionDef)}
    except (SyntaxError, ValueError, OSError):
        return 0
    stages = 0
    while stages < 3 and f"evaluate_stage{stages + 1}" in names:
        stages += 1
    return stages


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
    seeds = [p for stem in SEED_NAMES for p in sorted(path.glob(f"{stem}.*")) if p.is_file()]
    initial = seeds[0] if seeds else None
    # task.toml says, else the seed's suffix (initial.cpp is C++, as in ShinkaEvolve's folders)
    language = languages.normalise(str(meta.get("language") or (languages.by_suffix(initial.suffix) if initial
                                                                 else None) or "python"))
    evaluate_path = next((path / n for n in EVALUATOR_NAMES if (path / n).is_file()), None)
    if initial is None:
        raise TaskError(f"task directory {path} has no seed program: initial.py (evomcp, ShinkaEvolve) or "
                        f"initial_program.py (OpenEvolve), with EVOLVE-BLOCK markers"
                        + (f"; it holds {evaluate_path.name}" if evaluate_path else ""))
    if evaluate_path is None:
        raise TaskError(f"task directory {path} has no evaluate.py (evomcp, ShinkaEvolve) or evaluator.py "
                        f"(OpenEvolve) beside its {initial.name}")
    outside = links_leading_out(path)
    if outside:  # candidates get a copy of the folder, and a copy never follows a link out of it
        raise TaskError(f"task directory {path} holds links that lead out of it ({'; '.join(outside[:3])}): "
                        f"replace each with a copy of what it points to")
    kind, entry = _evaluate_contract(evaluate_path)
    settings = _peer_settings(path, kind, initial, evaluate_path)
    if settings.problems:
        raise TaskError(f"task directory {path}: " + "; ".join(settings.problems))
    code, notes = _seed_code(initial, meta, settings, language)
    missing = missing_imports(path, [initial, evaluate_path]) if language == "python" else []
    if missing:
        raise TaskError(f"task directory {path} needs what candidates cannot import: " + "; ".join(missing))
    description = meta.get("description") or settings.system_message
    if description is None and (path / "README.md").exists():
        description = (path / "README.md").read_text()[:4000]
    stages = _cascade_stages(evaluate_path) if kind == "evaluate_fn" and settings.cascade_thresholds is not None \
        else 0
    notes = settings.read + notes
    if stages:
        notes.append(f"cascade: {evaluate_path.name} defines evaluate_stage1..{stages}; a stage runs only while "
                     f"the metrics so far reach its threshold ({settings.cascade_thresholds})")
    timeout = meta.get("timeout_s", meta.get("timeout", settings.timeout_s or DEFAULT_TIMEOUT_S))
    try:
        commands = languages.commands(language, meta)
        return Task(
            name=str(meta.get("name", path.name)),
            description=str(description or f"Improve the program so that {evaluate_path.name} in {path.name} "
                                           f"scores it higher."),
            source=str(path),
            kind=kind,
            entry=entry,
            language=language,
            check_cmd=commands["check"],
            build_cmd=commands["build"],
            run_cmd=commands["run"],
            # the seed's own suffix (initial.cc, initial.js) unless task.toml names one
            suffix=commands["suffix"] if "suffix" in meta or languages.is_python(language) or not initial.suffix
            else initial.suffix,
            initial_code=code,
            timeout_s=float(timeout),
            memory_mb=int(meta.get("memory_mb", DEFAULT_MEMORY_MB)),
            target_score=meta.get("target_score"),
            evaluate_path=str(evaluate_path),
            seed_name=initial.name,
            framework=settings.framework,
            cascade_thresholds=settings.cascade_thresholds if stages else None,
            cascade_stages=max(stages, 1),
            fitness=settings.fitness,
            feature_dimensions=settings.feature_dimensions,
            run_defaults=settings.run_defaults,
            notes=notes,
        )
    except (ValueError, TypeError) as exc:
        raise TaskError(f"{toml_path} has a bad value: {exc}") from None


def resolve_task(name_or_path: str) -> Task:
    if name_or_path in BUILTIN_TASKS:
        return BUILTIN_TASKS[name_or_path].task()
    return load_task_dir(Path(name_or_path))

