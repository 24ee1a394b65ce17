"""What a task folder's Python files import and the machine lacks, found before anything runs.

Candidates and evaluators run on this interpreter (the sandbox binds its installation read-only), so a
module that this interpreter cannot find is missing there too. Only unconditional imports count: those
at the top level of a file, outside `try` blocks; the standard library, the folder's own modules and the
stand-ins for ShinkaEvolve and OpenEvolve (evaluators/peer_compat) are never missing.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

STAND_INS = Path(__file__).with_name("peer_compat")
# import names whose distribution on the package index is called otherwise
DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow", "cv2": "opencv-python",
                 "skimage": "scikit-image", "Bio": "biopython", "dateutil": "python-dateutil",
                 "shinka": "shinka-evolve"}
# parts of the peers that the stand-ins leave out on purpose, and why
NOT_PROVIDED = {
    "shinka.llm": "it calls models over the network, and evaluations run without network or API keys",
}


def install_command(module: str) -> str:
    """The command that installs `module` (a top-level import name) where evomcp runs."""
    return f"{sys.executable} -m pip install {DISTRIBUTIONS.get(module, module)}"


def _imports(code: str) -> list[str]:
    """Modules (dotted) imported unconditionally at the top level of `code`."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def _available(module: str, folder: Path) -> bool:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return True
    if (folder / f"{top}.py").is_file() or (folder / top).is_dir():
        return True
    if (STAND_INS / top).is_dir():
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def missing_imports(folder: Path, files: list[Path]) -> list[str]:
    """Reasons, one per module, that `files` (and the folder's modules they import) cannot import something."""
    problems: dict[str, str] = {}
    queue, seen = list(files), set()
    while queue:
        path = queue.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        try:
            code = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        for module in _imports(code):
            top = module.split(".")[0]
            if (folder / f"{top}.py").is_file():
                queue.append(folder / f"{top}.py")
            for prefix, why in NOT_PROVIDED.items():
                if (module == prefix or module.startswith(prefix + ".")) and importlib.util.find_spec(top) is None:
                    problems.setdefault(module, f"{path.name} imports {module}, which evomcp does not provide: {why}")
            if not _available(module, folder):
                problems.setdefault(top, f"{path.name} imports {top}, which is not installed where candidates run; "
                                         f"install it with: {install_command(top)}")
    return list(problems.values())
