"""The layering docs/ARCHITECTURE.md states, checked on the source: who imports whom, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import evomcp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"evomcp": ROOT / "evomcp", "evomcp.server": ROOT / "server", "evomcp.tools": ROOT / "tools",
            "evomcp.store": ROOT / "store", "evomcp.evaluators": ROOT / "evaluators"}
SKIP = ("evomcp.evaluators.peer_compat",)  # stand-ins of the peers' packages, run inside the sandbox only


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts or (package == "evomcp" and path.parent != folder
                                               and path.parent.name != "testing"):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            name = name.removesuffix(".__init__")
            if not name.startswith(SKIP):
                found[name] = path
    return found


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" or \
        isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"


def imports(name: str, path: Path, top_level: bool) -> set[str]:
    """The evomcp modules a module imports (at import time only when `top_level`), relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes, depth):
        for node in nodes:
            if isinstance(node, ast.If) and _type_checking(node):
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and top_level:
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(node, field, []) or [], depth + 1)

    visit(tree.body, 0)
    return found


def graph(top_level: bool) -> dict[str, set[str]]:
    known = modules()
    out = {}
    for name, path in known.items():
        out[name] = {m for m in imports(name, path, top_level) if m in known and m != name}
    return out


def test_the_layers_import_only_downwards():
    everything = graph(top_level=False)
    assert len(everything) > 60, "the scan found too few modules to mean anything"
    wrong = []
    for name, targets in everything.items():
        layer = name.split(".")[1] if "." in name else "evomcp"
        for target in targets:
            other = target.split(".")[1] if "." in target else "evomcp"
            if layer in ("store", "evaluators") and other in ("tools", "server", "testing") or \
                    layer == "store" and other == "evaluators" or layer == "evaluators" and other == "store" or \
                    layer == "tools" and other in ("server", "testing") or \
                    layer == "results" and other != "results":
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_tools_import_neither_mcp_nor_openai():
    wrong = []
    for name, path in modules().items():
        if name.startswith("evomcp.tools"):
            wrong += [f"{name} imports {m}" for m in imports(name, path, top_level=False)
                      if m.split(".")[0] in ("mcp", "openai")]
    assert wrong == []


def test_the_report_and_the_web_view_read_through_the_tools():
    """server/report and server/web format, render and route what the tools' views read (tools/history.py,
    tools/watch.py, ...): they import nothing of the store and touch no archive."""
    wrong = []
    for name, path in modules().items():
        if name.split(".")[:3] in (["evomcp", "server", "report"], ["evomcp", "server", "web"]):
            wrong += [f"{name} imports {m}" for m in imports(name, path, top_level=False)
                      if m.split(".")[:2] == ["evomcp", "store"]]
            wrong += [f"{name}:{node.lineno} uses .archive" for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.Attribute) and node.attr == "archive"]
    assert wrong == []


def test_no_import_cycles():
    """No module imports, at import time, a module that imports it back (directly or around a loop)."""
    edges = graph(top_level=True)
    state: dict[str, int] = {}
    cycles = []

    def walk(node, stack):
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target.startswith(node + "."):  # a package importing its own submodules in __init__ is no cycle
                continue
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_the_package_maps_the_folders_the_scan_reads():
    assert Path(evomcp.__file__).resolve().parent == PACKAGES["evomcp"]
