"""The settings a ShinkaEvolve or OpenEvolve task folder carries, read without running anything of it.

OpenEvolve: `config.yaml` (else `config.yml`, else the first `config*.yaml`): `prompt.system_message`,
`evaluator.timeout` (per stage), `evaluator.cascade_evaluation` and `cascade_thresholds`,
`diff_based_evolution`, `max_code_length`, `database.feature_dimensions`. Evaluation follows OpenEvolve's
defaults where the config is silent (300 s, cascade on with thresholds 0.5/0.75/0.9, a missing
combined_score is the mean of the numeric metrics other than the feature dimensions).

ShinkaEvolve: the run script (`run_evo.py`, or another script that builds an `EvolutionConfig`), read
from its syntax tree: `task_sys_msg`, `LocalJobConfig(time="hh:mm:ss")`, `patch_types` and
`patch_type_probs`, the YAML config it loads by default; and YAML configs holding `evo_config`
(`task_sys_msg`, `patch_types`, `patch_type_probs`, `init_program_path` through `add_evolve_markers`)
and `job_config.time`. The run script wins over the YAML, as it assigns over it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

OPENEVOLVE_TIMEOUT_S = 300.0
OPENEVOLVE_THRESHOLDS = [0.5, 0.75, 0.9]
OPENEVOLVE_FEATURES = ["complexity", "diversity"]
OPENEVOLVE_TEMPLATES = {"system_message", "evaluator_system_message"}  # names of its prompt templates, not text
PATCH_TYPES = ("diff", "full", "cross")
MIN_CODE_BYTES, MAX_CODE_BYTES = 1024, 4 * 1024 * 1024  # RunConfig.max_code_bytes' range


class PeerSettings(BaseModel):
    framework: Literal["openevolve", "shinka"] | None = None
    system_message: str | None = None
    timeout_s: float | None = None
    cascade_thresholds: list[float] | None = None
    fitness: Literal["combined_score", "average"] = "combined_score"
    feature_dimensions: list[str] = Field(default_factory=list)
    run_defaults: dict[str, Any] = Field(default_factory=dict)
    evolve_around: tuple[str, str] | None = None  # ShinkaEvolve's add_evolve_markers(insert_start, insert_end)
    read: list[str] = Field(default_factory=list)  # what was read from where, for the run's notes
    problems: list[str] = Field(default_factory=list)  # files that could not be read


def _yaml(path: Path, settings: PeerSettings) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text()
        # no settings file is that big, and YAML aliases (*name) multiply what a few lines hold
        if len(text) > 1_000_000 or len(re.findall(r"(?<![\w*])\*[\w-]", text)) > 50:
            raise ValueError(f"{path.name} is too large or holds too many YAML aliases to be settings")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        settings.problems.append(f"{path.name} could not be read as YAML: {str(exc)[:200]}")
        return {}
    return data if isinstance(data, dict) else {}


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _code_bytes(chars: Any) -> int | None:
    if isinstance(chars, bool) or not isinstance(chars, int):
        return None
    return max(MIN_CODE_BYTES, min(MAX_CODE_BYTES, chars))


def _patch_mix(types: Any, probs: Any) -> dict[str, float] | None:
    if not isinstance(types, list) or not types:
        return None
    if not isinstance(probs, list) or len(probs) != len(types):
        probs = [1.0] * len(types)
    mix = {t: float(p) for t, p in zip(types, probs) if t in PATCH_TYPES and isinstance(p, (int, float)) and p > 0}
    return mix or None


def _openevolve_config(folder: Path) -> Path | None:
    for name in ("config.yaml", "config.yml"):
        if (folder / name).is_file():
            return folder / name
    staged = sorted(p for p in folder.glob("config*.y*ml") if p.is_file())
    return staged[0] if staged else None


NOTE_CHARS = 2000  # what one setting read may add to the run's notes


def _guarded(read):
    """A reader that hostile files cannot take down: what it cannot parse (a YAML alias bomb, a syntax tree
    too deep for the parser, absurd numbers) is a problem noted, not an exception; and no note grows
    past NOTE_CHARS."""
    def guarded(folder: Path) -> PeerSettings:
        try:
            settings = read(folder)
        except (MemoryError, RecursionError, ValueError, TypeError, OverflowError) as exc:
            settings = PeerSettings(problems=[f"the task's settings could not be read ({type(exc).__name__}: "
                                              f"{str(exc)[:200]}); evomcp's defaults apply"])
        settings.read = [text if len(text) <= NOTE_CHARS else text[:NOTE_CHARS] + " ..." for text in settings.read]
        return settings
    guarded.__name__, guarded.__doc__ = read.__name__, read.__doc__
    return guarded


@_guarded
def read_openevolve(folder: Path) -> PeerSettings:
    settings = PeerSettings(framework="openevolve", timeout_s=OPENEVOLVE_TIMEOUT_S,
                            cascade_thresholds=list(OPENEVOLVE_THRESHOLDS), fitness="average",
                            feature_dimensions=list(OPENEVOLVE_FEATURES))
    settings.read.append("a missing combined_score is the mean of the numeric metrics other than the feature "
                         "dimensions (OpenEvolve's rule)")
    path = _openevolve_config(folder)
    if path is None:
        settings.read.append("no config.yaml: OpenEvolve's defaults apply (evaluator timeout 300 s per stage, "
                             "cascade thresholds [0.5, 0.75, 0.9])")
        return settings
    config = _yaml(path, settings)
    prompt, evaluator, database = (_section(config, k) for k in ("prompt", "evaluator", "database"))
    read = []
    message = prompt.get("system_message")
    if isinstance(message, str) and message.strip() and message.strip() not in OPENEVOLVE_TEMPLATES:
        settings.system_message = message.strip()
        read.append("prompt.system_message (the task description)")
    timeout = evaluator.get("timeout")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout < 1e6:
        settings.timeout_s = float(timeout)
        read.append(f"evaluator.timeout {timeout:g} s per stage")
    if evaluator.get("cascade_evaluation") is False:
        settings.cascade_thresholds = None
        read.append("evaluator.cascade_evaluation false")
    thresholds = evaluator.get("cascade_thresholds")
    if settings.cascade_thresholds is not None and isinstance(thresholds, list) and \
            all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in thresholds):
        settings.cascade_thresholds = [float(t) for t in thresholds]
        read.append(f"evaluator.cascade_thresholds {settings.cascade_thresholds}")
    features = database.get("feature_dimensions")
    if isinstance(features, list) and all(isinstance(f, str) for f in features):
        settings.feature_dimensions = list(features)
        read.append(f"database.feature_dimensions {features}")
    diff_based = config.get("diff_based_evolution")
    if isinstance(diff_based, bool):
        settings.run_defaults["patch_mix"] = {"diff": 1.0} if diff_based else {"full": 1.0}
        read.append(f"diff_based_evolution {str(diff_based).lower()} (patch_mix "
                    f"{settings.run_defaults['patch_mix']})")
    limit = _code_bytes(config.get("max_code_length"))
    if limit is not None:
        settings.run_defaults["max_code_bytes"] = limit
        read.append(f"max_code_length {config['max_code_length']} (max_code_bytes {limit})")
    settings.read.append(f"{path.name}: " + (", ".join(read) or "nothing evomcp uses"))
    return settings


# ---------------------------------------------------------------- ShinkaEvolve


def _hms(text: Any) -> float | None:
    """ShinkaEvolve's job time "hh:mm:ss" in seconds."""
    if not isinstance(text, str) or not re.fullmatch(r"\s*\d+:\d+:\d+\s*", text):
        return None
    if len(text.strip()) > 20:  # no job runs for longer than a century; a huge number is no setting
        return None
    h, m, s = (int(part) for part in text.split(":"))
    seconds = h * 3600 + m * 60 + s
    return float(seconds) if 0 < seconds < 1e6 else None


def _literal(node: ast.expr | None, names: dict[str, Any]) -> Any:
    """A constant, list or dict literal, or a module-level name bound to one; None otherwise."""
    if node is None:
        return None
    if isinstance(node, ast.Name):
        return names.get(node.id)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _read_run_script(path: Path) -> dict[str, Any]:
    """What a ShinkaEvolve run script sets: task_sys_msg, time, patch_types, patch_type_probs, config_path."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return {}
    names: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _literal(node.value, names)
            if value is not None:
                names[node.targets[0].id] = value
    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            name = _call_name(node)
            if name == "EvolutionConfig":
                for key in ("task_sys_msg", "patch_types", "patch_type_probs"):
                    value = _literal(keywords.get(key), names)
                    if value is not None:
                        found[key] = value
            elif name.endswith("JobConfig") and _hms(_literal(keywords.get("time"), names)) is not None:
                found.setdefault("time", _literal(keywords["time"], names))
            elif name == "add_argument" and node.args and _literal(node.args[0], names) == "--config_path":
                default = _literal(keywords.get("default"), names)
                if isinstance(default, str):
                    found["config_path"] = default
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            # config["evo_config"]["task_sys_msg"] = NAME: the script sets it over its YAML
            target = node.targets[0]
            if isinstance(target, ast.Subscript) and _literal(target.slice, {}) == "task_sys_msg":
                value = _literal(node.value, names)
                if isinstance(value, str):
                    found["task_sys_msg"] = value
    return found


def _run_script(folder: Path) -> Path | None:
    if (folder / "run_evo.py").is_file():
        return folder / "run_evo.py"
    for path in sorted(folder.glob("*.py")):
        try:
            if "EvolutionConfig" in path.read_text():
                return path
        except (OSError, UnicodeDecodeError):
            continue
    return None


def _shinka_yaml(folder: Path, named: str | None, settings: PeerSettings) -> tuple[Path | None, dict[str, Any]]:
    """The YAML config the run script loads by default, else the first with an `evo_config` section."""
    candidates = ([folder / named] if named and "/" not in named else []) + \
        sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    for path in candidates:
        if path.is_file():
            data = _yaml(path, settings)
            if _section(data, "evo_config"):
                return path, data
    return None, {}


@_guarded
def read_shinka(folder: Path) -> PeerSettings:
    settings = PeerSettings(framework="shinka")
    script = _run_script(folder)
    from_script = _read_run_script(script) if script is not None else {}
    yaml_path, config = _shinka_yaml(folder, from_script.get("config_path"), settings)
    evo = _section(config, "evo_config")
    job = _section(config, "job_config")
    read_yaml, read_script = [], []
    message = from_script.get("task_sys_msg")
    if isinstance(message, str) and message.strip():
        settings.system_message = message.strip()
        read_script.append("task_sys_msg (the task description)")
    elif isinstance(evo.get("task_sys_msg"), str) and evo["task_sys_msg"].strip():
        settings.system_message = evo["task_sys_msg"].strip()
        read_yaml.append("evo_config.task_sys_msg (the task description)")
    if _hms(from_script.get("time")) is not None:
        settings.timeout_s = _hms(from_script["time"])
        read_script.append(f"job time {from_script['time']} ({settings.timeout_s:g} s)")
    elif _hms(job.get("time")) is not None:
        settings.timeout_s = _hms(job["time"])
        read_yaml.append(f"job_config.time {job['time']} ({settings.timeout_s:g} s)")
    for source, values, read in ((script, from_script, read_script), (yaml_path, evo, read_yaml)):
        mix = _patch_mix(values.get("patch_types"), values.get("patch_type_probs"))
        if mix and "patch_mix" not in settings.run_defaults:
            settings.run_defaults["patch_mix"] = mix
            read.append(f"patch_types {values.get('patch_types')} (patch_mix {mix})")
    init = evo.get("init_program_path")
    if isinstance(init, dict) and str(init.get("_target_", "")).endswith("add_evolve_markers"):
        start, end = init.get("insert_start"), init.get("insert_end")
        if isinstance(start, str) and isinstance(end, str):
            settings.evolve_around = (start, end)
            read_yaml.append(f"init_program_path add_evolve_markers around {start}..{end}")
    if script is not None:
        settings.read.append(f"{script.name}: " + (", ".join(read_script) or "nothing evomcp uses"))
    if yaml_path is not None:
        settings.read.append(f"{yaml_path.name}: " + (", ".join(read_yaml) or "nothing evomcp uses"))
    return settings


def wrap_in_markers(code: str, start: str, end: str) -> str | None:
    """ShinkaEvolve's add_evolve_markers for named definitions: EVOLVE-BLOCK-START on the line before the
    definition of `start` (taking that line if blank), EVOLVE-BLOCK-END after the end of `end`. None when
    either is not a function or class of the program."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.setdefault(node.name, node)
    if start not in found or end not in found:
        return None
    lines = code.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    before, after = max(found[start].lineno - 2, 0), found[end].end_lineno

    def put(index: int, marker: str) -> None:
        if index < len(lines) and not lines[index].strip():
            lines[index] = marker
        else:
            lines.insert(index, marker)

    put(after, "# EVOLVE-BLOCK-END\n")
    put(before, "# EVOLVE-BLOCK-START\n")
    return "".join(lines)
