"""The canonical form of a program: its syntax tree with what cannot change its behaviour taken out.

Two programs with the same canonical form are the same program written differently. Taken out:
comments, formatting and parentheses; docstrings and other bare constant statements, `pass`;
annotations of functions and of their locals; the spelling of numbers (0.5, .5 and 5e-1 are one
number; arithmetic on constants such as 1 - 1e-9 is folded, as Python itself does, and a number
added to or multiplied with something else is written first: x * 2 is 2 * x); names: each
function's parameters and locals are numbered in order of first use, each of their definition-use
webs apart (tools/webs.py: a variable reused for two purposes is two), and so are module-level names
that the code outside the EVOLVE-BLOCKs never mentions (helpers, constants, imports of the mutable
code). What stays is everything that can change what the program does: every other constant,
operator, call, attribute, keyword argument, string and the order of statements.

`fingerprint` is the SHA-256 of that form. Python code that does not parse falls back to its token
sequence, which ignores whitespace only; a program in another language is its token sequence without
comments and formatting, numbers by value and type (tools/lexing.py).
"""

from __future__ import annotations

import ast
import hashlib
import math
import operator
import re
import threading

from . import lexing, markers
from .errors import EvoError
from .webs import webs

_IDENT = re.compile(r"[A-Za-z_]\w*")
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|\S")
_FOLD = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
         ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_BODIES = ("body", "orelse", "finalbody")  # statement lists
WEBS_MAX_NODES = 4_000  # syntax-tree nodes of one function past which its variables are not split into webs


# One canonical form at a time: fingerprints run in worker threads, and CPython 3.11's AST conversion keeps
# its recursion depth in state the threads share ("AST constructor recursion depth mismatch" when two overlap).
# The work holds the GIL anyway, so the lock costs no parallelism.
_AST_LOCK = threading.Lock()


def fingerprint(code: str, language: str = "python") -> str:
    with _AST_LOCK:
        return hashlib.sha256(canonical(code, language).encode()).hexdigest()


def canonical(code: str, language: str = "python") -> str:
    try:
        layout: markers.Layout | None = markers.split(code)
    except EvoError:
        layout = None
    if language == "python":
        try:
            tree = ast.parse(code)
            # names the fixed code mentions are the program's interface: they keep their spelling
            kept = set(_IDENT.findall("".join(layout.fixed))) if layout is not None else None
            return ast.dump(_Canon(kept).visit(_strip(tree)), annotate_fields=False)
        except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError):
            pass
    text = "\n".join(layout.mutable) if layout is not None else code
    if language != "python":
        return " ".join(lexing.tokens(text, language))
    return " ".join(_TOKEN.findall(text))


def _is_noop(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))


def _strip(tree: ast.Module) -> ast.Module:
    """Drop docstrings, bare constants and `pass`; a body left empty holds one `pass`."""
    tree.body = _strip_body(tree.body, empty_ok=True)
    return tree


def _strip_body(body: list[ast.stmt], empty_ok: bool = False) -> list[ast.stmt]:
    kept = []
    for stmt in body:  # statements only: no expression holds a statement
        if _is_noop(stmt):
            continue
        for name in _BODIES:
            inner = getattr(stmt, name, None)
            if isinstance(inner, list) and inner:
                setattr(stmt, name, _strip_body(inner, empty_ok=name != "body"))
        for part in [*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())]:  # except clauses, match cases
            part.body = _strip_body(part.body)
        kept.append(stmt)
    return kept or ([] if empty_ok else [ast.Pass()])


def _bound(nodes: list[ast.AST]) -> tuple[set[str], set[str], set[str]]:
    """Names bound in a scope (not in the scopes nested in it), and its global and nonlocal declarations."""
    bound: set[str] = set()
    declared_global: set[str] = set()
    declared_nonlocal: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)  # the rest of a nested scope, but for what it evaluates here, is its own
            stack += node.decorator_list
            if isinstance(node, ast.ClassDef):
                stack += node.bases + [k.value for k in node.keywords]
            else:
                stack += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
            continue
        if isinstance(node, ast.Lambda):
            stack += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
            continue
        if isinstance(node, ast.comprehension):  # its target belongs to the comprehension's own scope
            stack += [node.iter, *node.ifs]
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name.split(".")[0]) for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global):
            declared_global.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            declared_nonlocal.update(node.names)
        else:
            for attr in ("name", "rest"):  # match patterns: MatchAs, MatchStar, MatchMapping
                value = getattr(node, attr, None)
                if isinstance(node, ast.pattern) and isinstance(value, str):
                    bound.add(value)
        stack.extend(ast.iter_child_nodes(node))
    return bound - declared_global - declared_nonlocal, declared_global, declared_nonlocal


class _Scope:
    def __init__(self, kind: str, bound: set[str], prefix: str, declared_global: set[str] = frozenset(),
                 declared_nonlocal: set[str] = frozenset()):
        self.kind, self.bound, self.prefix = kind, bound, prefix
        self.declared_global, self.declared_nonlocal = declared_global, declared_nonlocal
        self.names: dict[tuple[str, int], str] = {}
        self.webs: dict[int, int] = {}  # a function's: id(node) -> the web of its local (tools/webs.py)

    def name(self, name: str, node: ast.AST | None = None) -> str:
        if self.kind == "class":  # class attributes keep their names
            return name
        key = (name, self.webs.get(id(node), 0) if node is not None else 0)
        return self.names.setdefault(key, f"%{self.prefix}{len(self.names)}")  # '%': never a real name


class _Canon(ast.NodeTransformer):
    def __init__(self, kept: set[str] | None):
        self.kept = kept
        self.scopes: list[_Scope] = []

    # names ------------------------------------------------------------------

    def _resolve(self, name: str, node: ast.AST | None = None) -> str:
        for depth in range(len(self.scopes) - 1, -1, -1):
            scope = self.scopes[depth]
            if scope.kind == "class" and depth != len(self.scopes) - 1:
                continue  # a class body is not visible from the functions nested in it
            if name in scope.declared_global:
                return self._resolve_global(name)
            if name in scope.declared_nonlocal:
                continue
            if name in scope.bound:
                return scope.name(name, node)
        return name

    def _resolve_global(self, name: str) -> str:
        module = self.scopes[0]
        return module.name(name) if name in module.bound else name

    def _push(self, kind: str, nodes: list[ast.AST], params: list[str] = ()) -> None:
        bound, declared_global, declared_nonlocal = _bound(nodes)
        self.scopes.append(_Scope(kind, bound | set(params), f"{kind[0]}{len(self.scopes)}.", declared_global,
                                  declared_nonlocal))

    # scopes -----------------------------------------------------------------

    def visit_Module(self, node: ast.Module) -> ast.AST:
        bound, _, _ = _bound(node.body)
        renamable = set() if self.kept is None else bound - self.kept
        self.scopes.append(_Scope("module", renamable, "g"))
        self.generic_visit(node)
        self.scopes.pop()
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> ast.AST:
        args = node.args
        args.defaults = [self.visit(d) for d in args.defaults]  # evaluated in the enclosing scope
        args.kw_defaults = [None if d is None else self.visit(d) for d in args.kw_defaults]
        if not isinstance(node, ast.Lambda):
            node.decorator_list = [self.visit(d) for d in node.decorator_list]
            node.name = self._resolve(node.name)
            node.returns = None
            node.type_comment = None
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a)]
        body = node.body if isinstance(node.body, list) else [node.body]
        self._push("function", body, [a.arg for a in every])
        # the analysis re-walks loops until nothing changes: past a size it is skipped, which only lets a
        # rewording through (each local is then one variable), and keeps a huge proposal from costing minutes
        if sum(1 for _ in ast.walk(node)) <= WEBS_MAX_NODES:
            self.scopes[-1].webs = webs(node, self.scopes[-1].bound)
        for arg in every:
            arg.arg = self._resolve(arg.arg, arg)
            arg.annotation = None
            arg.type_comment = None
        node.body = [self.visit(s) for s in body] if isinstance(node.body, list) else self.visit(node.body)
        if isinstance(node.body, list):
            node.body = [s for s in node.body if s is not None] or [ast.Pass()]
        self.scopes.pop()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> ast.AST:
        generators = node.generators
        generators[0].iter = self.visit(generators[0].iter)  # evaluated in the enclosing scope
        targets = {n.id for g in generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        self.scopes.append(_Scope("comprehension", targets, f"c{len(self.scopes)}."))
        for i, generator in enumerate(generators):
            generator.target = self.visit(generator.target)
            if i:
                generator.iter = self.visit(generator.iter)
            generator.ifs = [self.visit(condition) for condition in generator.ifs]
        for field in ("elt", "key", "value"):
            if hasattr(node, field):
                setattr(node, field, self.visit(getattr(node, field)))
        self.scopes.pop()
        return node

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        node.keywords = [self.visit(k) for k in node.keywords]
        node.name = self._resolve(node.name)
        self._push("class", node.body)
        node.body = [self.visit(s) for s in node.body]
        self.scopes.pop()
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._resolve(node.id, node)
        return node

    def visit_Global(self, node: ast.Global) -> ast.AST:
        node.names = [self._resolve_global(n) for n in node.names]
        return node

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        scope = self.scopes.pop()  # resolve in the enclosing scopes
        node.names = [self._resolve(n) for n in node.names]
        self.scopes.append(scope)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self._resolve(node.name)
        self.generic_visit(node)
        return node

    def _import(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        for alias in node.names:
            if alias.name == "*":
                continue
            if alias.asname is None and "." in alias.name:
                continue  # `import a.b` binds `a`: left as written
            renamed = self._resolve(alias.asname or alias.name, alias)
            alias.asname = None if renamed == alias.name else renamed
        return node

    visit_Import = visit_ImportFrom = _import

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if self.scopes[-1].kind != "function":  # class fields and module annotations can matter
            self.generic_visit(node)
            return node
        if node.value is None:
            return None
        return self.visit(ast.Assign(targets=[node.target], value=node.value, type_comment=None))

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node  # renamed by the function that owns it

    # numbers ----------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        node.kind = None  # u"" and "" are one string
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        value = _number(node.operand)
        if value is not None and isinstance(node.op, (ast.USub, ast.UAdd)):
            return self.visit_Constant(ast.Constant(-value if isinstance(node.op, ast.USub) else value))
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        a, b = _number(node.left), _number(node.right)
        fold = _FOLD.get(type(node.op))
        if isinstance(node.op, (ast.Add, ast.Mult)) and b is not None and a is None:
            node.left, node.right = node.right, node.left  # x * 2 is 2 * x: the number first
            return node
        if a is None or b is None or fold is None or (fold is operator.pow and abs(b) > 64):
            return node
        try:
            value = fold(a, b)
        except (ArithmeticError, ValueError):
            return node
        if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)) or (
                isinstance(value, int) and abs(value) > 2**64):
            return node
        return self.visit_Constant(ast.Constant(value))


def _number(node: ast.AST) -> int | float | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    return None
