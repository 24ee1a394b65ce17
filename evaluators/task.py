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
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from . import languages
from .peer_settings import PeerSettings, read_openevolve, read_shinka, wrap_in_markers
from .sandbox import links_leading_out
from .task_imports import missing_imports
from .verdict import Verdict

TASKS_DIR = Path(__file__).with_name("tasks")
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
    def file_suffix(self) -> str:
        return self.suffix or languages.get(self.language).suffix


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

    def task(self) -> Task:
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


def _heilbronn_triangle(n: int, best: float) -> BuiltinTask:
    from .scoring import TRIANGLE_SIDE, TRIANGLE_TOLERANCE, score_heilbronn_triangle

    return BuiltinTask(
        name=f"heilbronn_triangle_{n}",
        summary=f"place {n} points in a unit-area equilateral triangle, maximise the smallest triangle "
                f"area (best known {best})",
        description=(
            f"Heilbronn problem for triangles. Place {n} points in the equilateral triangle with vertices "
            f"(0, 0), (s, 0) and (s/2, s*sqrt(3)/2), where s = 2 / 3**0.25 = {TRIANGLE_SIDE!r} so that its "
            f"area is 1, maximising the smallest area of any triangle formed by three of the points. The "
            f"program must define run_heilbronn() returning an array of shape ({n}, 2) of (x, y) points. "
            f"Checks: finite numbers of the exact shape; every point inside the triangle, i.e. y >= 0, "
            f"y <= sqrt(3)*x and y <= sqrt(3)*(s - x), each with a tolerance of {TRIANGLE_TOLERANCE} in "
            f"distance to the edge. combined_score is the smallest area over all {n * (n - 1) * (n - 2) // 6} "
            f"triples divided by the triangle's area (higher is better; three collinear or coincident points "
            f"score 0). The best known value is {best} (AlphaEvolve, 2025). Hints: optimal configurations use "
            f"the boundary (several points on the edges and at or near the vertices) and are not symmetric "
            f"grids, which have collinear triples; maximise the minimum area by local search, random restarts "
            f"or a smooth surrogate (e.g. a soft-min of areas) with the points projected back into the "
            f"triangle. numpy is available, scipy may not be; the program must finish within the time limit."
        ),
        seed_file="heilbronn_triangle/initial.py",
        seed_replacements={"N_POINTS = 11": f"N_POINTS = {n}"},
        entry="run_heilbronn",
        target_score=best,
        scorer=partial(score_heilbronn_triangle, n=n),
    )


def _min_max_distance(n: int, best: float) -> BuiltinTask:
    from .scoring import COORDINATE_LIMIT, score_min_max_distance

    return BuiltinTask(
        name=f"min_max_distance_{n}",
        summary=f"place {n} points in the plane, minimise (max distance / min distance)^2 "
                f"(best known {best}; score = best / ratio^2)",
        description=(
            f"Place {n} points in the plane so that the ratio of the largest to the smallest pairwise distance "
            f"is as small as possible. The program must define run_points() returning an array of shape "
            f"({n}, 2). Checks: finite numbers of the exact shape, every coordinate within "
            f"+-{COORDINATE_LIMIT:,.0f}, no two points coinciding. The ratio is scale- and rotation-invariant. "
            f"combined_score = {best} / (max distance / min distance)^2, so higher is better and 1.0 "
            f"matches the best known ratio^2 = {best} (AlphaEvolve, 2025). Hints: good configurations look like pieces of a triangular (hexagonal) lattice "
            f"bounded by a near-circle, then relaxed; minimise the max distance subject to all distances >= 1 "
            f"with a penalty method or a smooth max (log-sum-exp) and many random restarts. numpy is available, "
            f"scipy may not be; the program must finish within the time limit."
        ),
        seed_file="min_max_distance/initial.py",
        seed_replacements={"N_POINTS = 16": f"N_POINTS = {n}"},
        entry="run_points",
        target_score=1.0,
        scorer=partial(score_min_max_distance, n=n, dim=2, best=best),
    )


def _autocorrelation_first(best: float, max_steps: int = 600) -> BuiltinTask:
    from .scoring import score_autocorrelation_first

    return BuiltinTask(
        name="autocorrelation_first",
        summary=f"non-negative step function on [-1/4, 1/4] minimising max(f*f) / (integral f)^2 "
                f"(best known upper bound {best}; score = {best} / bound)",
        description=(
            f"First autocorrelation inequality: find a non-negative function f on [-1/4, 1/4] making "
            f"C = max_t (f*f)(t) / (integral of f)^2 as small as possible, where (f*f)(t) = integral of "
            f"f(x) f(t - x) dx is the autoconvolution. f is a step function: the program must define "
            f"run_autocorrelation() returning heights, an array of shape (n,) with 1 <= n <= {max_steps}, and "
            f"f = heights[i] on [-1/4 + i*h, -1/4 + (i+1)*h) with h = 1/(2n). Checks: finite numbers, a 1-D "
            f"array of allowed length, every height >= 0 and not all zero. C is computed exactly: f*f is "
            f"piecewise linear with knots at t = -1/2 + m*h, so C = 2n * max(np.convolve(heights, heights)) "
            f"/ sum(heights)^2 (invariant under scaling the heights). combined_score = {best} / C, so higher is "
            f"better and 1.0 matches the best known upper bound C <= {best} (AlphaEvolve, 2025, mathematical "
            f"discoveries, first autocorrelation inequality; the previous best was 1.5098). A constant f "
            f"gives C = 2. Hints: good functions are irregular and asymmetric, with narrow spikes and "
            f"possibly stretches of zero; optimise the heights directly (e.g. gradient descent on a soft-max of the "
            f"autoconvolution, or subgradient steps on its maximum, projecting onto heights >= 0), start from "
            f"a coarse solution and upsample it to more steps. numpy is available, scipy may not be; the "
            f"program must finish within the time limit."
        ),
        seed_file="autocorrelation_first/initial.py",
        entry="run_autocorrelation",
        target_score=1.0,
        scorer=partial(score_autocorrelation_first, max_steps=max_steps, best=best),
    )


def _tsp_berlin52() -> BuiltinTask:
    from .scoring import BERLIN52, BERLIN52_OPTIMUM, score_tsp_tour

    return BuiltinTask(
        name="tsp_berlin52",
        summary=f"C++: a travelling-salesman heuristic for TSPLIB's berlin52 (optimum {BERLIN52_OPTIMUM}; "
                f"score = {BERLIN52_OPTIMUM} / tour length)",
        description=(
            f"Travelling salesman, in C++: find a short closed tour through the {len(BERLIN52)} cities of berlin52 "
            f"from TSPLIB (52 locations in Berlin; G. Reinelt, TSPLIB, ORSA Journal on Computing 3(4), 1991), whose "
            f"optimal tour is {BERLIN52_OPTIMUM} long. The program is C++17 (g++ -O2; the standard library only); "
            f"it is built and run in the sandbox and must print the tour on stdout: the {len(BERLIN52)} city "
            f"indices 0 to {len(BERLIN52) - 1}, each exactly once, separated by whitespace, and nothing else "
            f"(diagnostics go to stderr). Distances are TSPLIB's EUC_2D: the Euclidean distance rounded to the "
            f"nearest integer, as dist() computes it. A trusted scorer checks the tour and measures it itself; "
            f"combined_score = {BERLIN52_OPTIMUM} / length, so 1.0 is an optimal tour. The seed builds a "
            f"nearest-neighbour tour and improves it by simulated annealing over 2-opt moves. Hints: more and "
            f"better-tuned annealing, Or-opt moves (move a segment of 1 to 3 cities), 2-opt to a local optimum "
            f"with neighbour lists, random restarts or Or-3opt perturbations (iterated local search) within the "
            f"time limit (build and run together)."
        ),
        seed_file="tsp_berlin52/initial.cpp",
        entry="main",
        target_score=1.0,
        language="cpp",
        scorer=score_tsp_tour,
    )


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    t.name: t
    for t in (
        _circle_packing(26, 2.6359830849),
        _circle_packing(32, 2.9395727712),
        _heilbronn_triangle(11, 0.036529889880030156),
        _min_max_distance(16, 12.88926611203463),
        _autocorrelation_first(1.5053),
        _tsp_berlin52(),
    )
}


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

