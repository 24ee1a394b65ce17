"""Definition-use webs of a function's locals, so that a variable split in two, or one reused for two
purposes, gets the same canonical names (tools/canonical.py) whatever it is called.

A web is a set of bindings of one name together with the uses they reach: `i` counting one loop and
`i` counting a later, unrelated loop are two webs, as if they had two names. Which bindings reach a
use is computed over the function's statements: branches joined, loops iterated to a fixpoint with
their `break` and `continue`. Renaming whole webs apart never changes what a program does, and
merging webs only makes the canonical form less forgiving, so wherever the analysis is not exact it
merges: a name bound inside `try`, `with` or `match`, by `:=`, deleted, or used by a nested function,
lambda or class keeps one web, and those statements count as possible exits of the loops around them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Optional

State = Optional[dict[str, frozenset[int]]]  # name -> bindings that may reach this point; None: unreachable

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_OPAQUE = (ast.Try, ast.With, ast.AsyncWith, ast.Match, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))


def webs(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, local: set[str]) -> dict[int, int]:
    """id(node) -> web number (from 1) for Name, arg and import-alias nodes of the function's `local` names
    that the analysis follows; every other node of a local belongs to web 0 of its name."""
    body = function.body if isinstance(function.body, list) else [ast.Expr(function.body)]
    names = local - _merged(body)
    if not names:
        return {}
    analysis = _Webs(names)
    state: dict[str, frozenset[int]] = {name: frozenset({analysis.unbound(name)}) for name in names}
    args = function.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a)]:
        if arg.arg in names:
            state[arg.arg] = frozenset({analysis.bind(arg)})
    analysis.block(body, state)
    return analysis.numbers()


def _bound_in(node: ast.AST) -> set[str]:
    """Every name a statement binds, however deep."""
    out: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            out.add(child.id)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            out |= {a.asname or a.name.split(".")[0] for a in child.names}
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(child.name)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            out.add(child.name)
        elif isinstance(child, ast.pattern):
            out |= {v for v in (getattr(child, "name", None), getattr(child, "rest", None)) if isinstance(v, str)}
    return out


def _merged(body: list[ast.stmt]) -> set[str]:
    """Names left as one web: see the module's docstring."""
    out: set[str] = set()
    for top in body:
        for node in ast.walk(top):
            if isinstance(node, _OPAQUE):
                out |= _bound_in(node)
            elif isinstance(node, ast.NamedExpr):
                out |= _bound_in(node.target)
            elif isinstance(node, ast.Delete):
                out |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            elif isinstance(node, _NESTED):
                out |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                if not isinstance(node, ast.Lambda):
                    out.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                out |= set(node.names)
    return out


def _join(*states: State) -> State:
    live = [s for s in states if s is not None]
    if not live:
        return None
    out: dict[str, frozenset[int]] = {}
    for state in live:
        for name, bindings in state.items():
            out[name] = out.get(name, frozenset()) | bindings
    return out


class _Webs:
    def __init__(self, names: set[str]):
        self.names = names
        self.parent: list[int] = []  # union-find over bindings and uses
        self.ids: dict[int, int] = {}  # id(node) -> its element
        self.keep: list[ast.AST] = []  # nodes made here, kept alive so their ids stay theirs
        self.loops: list[tuple[list[State], list[State]]] = []  # (breaks, continues) of the enclosing loops
        self.heads: dict[int, State] = {}  # id(loop) -> the state at its head when last analysed

    def bind(self, node: ast.AST) -> int:
        if id(node) not in self.ids:
            self.parent.append(len(self.parent))
            self.ids[id(node)] = len(self.parent) - 1
        return self.ids[id(node)]

    def unbound(self, name: str) -> int:
        """The element standing for 'no binding yet' of a name."""
        marker = ast.Name(name)
        self.keep.append(marker)
        return self.bind(marker)

    def _find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _union(self, elements: set[int]) -> None:
        roots = sorted({self._find(e) for e in elements})
        for other in roots[1:]:
            self.parent[other] = roots[0]

    def numbers(self) -> dict[int, int]:
        markers = {id(m) for m in self.keep}
        roots: dict[int, int] = {}
        return {key: roots.setdefault(self._find(e), len(roots) + 1)
                for key, e in self.ids.items() if key not in markers}

    # expressions ------------------------------------------------------------------

    def use(self, node: ast.Name, state: State) -> None:
        if state is not None:
            self._union(set(state[node.id]) | {self.bind(node)})

    def expr(self, node: ast.AST | None, state: State) -> State:
        if node is None or state is None:
            return state
        if isinstance(node, ast.Name):
            if node.id in self.names and isinstance(node.ctx, ast.Load):
                self.use(node, state)
            return state
        if isinstance(node, _COMPREHENSIONS):
            own = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            saved, self.names = self.names, self.names - own  # the comprehension's own names are not ours
            try:
                for child in ast.iter_child_nodes(node):
                    state = self.expr(child, state)
            finally:
                self.names = saved
            return state
        if isinstance(node, ast.Lambda):
            return state  # the names it uses are merged
        for child in ast.iter_child_nodes(node):
            state = self.expr(child, state)
        return state

    def store(self, target: ast.AST, state: State) -> State:
        """Bind the names of an assignment target; subscripts and attributes in it are uses."""
        if state is None:
            return None
        if isinstance(target, ast.Name):
            if target.id in self.names:
                return {**state, target.id: frozenset({self.bind(target)})}
            return state
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                state = self.store(element, state)
            return state
        if isinstance(target, ast.Starred):
            return self.store(target.value, state)
        return self.expr(target, state)  # a[i] = ... and a.b = ... use a and i

    # statements -------------------------------------------------------------------

    def block(self, body: list[ast.stmt], state: State) -> State:
        for stmt in body:
            if state is None:
                return None
            state = self.stmt(stmt, state)
        return state

    def stmt(self, node: ast.stmt, state: dict[str, frozenset[int]]) -> State:
        if isinstance(node, ast.Assign):
            state = self.expr(node.value, state)
            for target in node.targets:
                state = self.store(target, state)
            return state
        if isinstance(node, ast.AugAssign):
            state = self.expr(node.value, state)
            target = node.target
            if isinstance(target, ast.Name) and target.id in self.names:
                own = self.bind(target)
                self._union(set(state[target.id]) | {own})  # x += 1 reads x: one web
                return {**state, target.id: frozenset({own})}
            return self.expr(target, state)
        if isinstance(node, ast.AnnAssign):
            state = self.expr(node.value, state)
            return self.store(node.target, state) if node.value is not None else state
        if isinstance(node, (ast.Return, ast.Raise)):
            for child in ast.iter_child_nodes(node):
                state = self.expr(child, state)
            return None
        if isinstance(node, (ast.Break, ast.Continue)):
            breaks, continues = self.loops[-1]
            (breaks if isinstance(node, ast.Break) else continues).append(state)
            return None
        if isinstance(node, ast.If):
            state = self.expr(node.test, state)
            return _join(self.block(node.body, state), self.block(node.orelse, state))
        if isinstance(node, (ast.For, ast.AsyncFor)):
            state = self.expr(node.iter, state)
            return self._loop(node, state, lambda s: self.store(node.target, s))
        if isinstance(node, ast.While):
            return self._loop(node, state, lambda s: self.expr(node.test, s))
        if isinstance(node, _OPAQUE):
            return self._opaque(node, state)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for child in [*node.decorator_list, *getattr(node, "bases", []),
                          *(k.value for k in getattr(node, "keywords", []))]:
                state = self.expr(child, state)
            if not isinstance(node, ast.ClassDef):
                for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                    state = self.expr(default, state)
            return state  # its name is merged, its body is another scope
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                if local in self.names:
                    state = {**state, local: frozenset({self.bind(alias)})}
            return state
        for child in ast.iter_child_nodes(node):  # Expr, Assert, Pass, Global, Delete, ...
            state = self.expr(child, state)
        return state

    def _loop(self, node: ast.For | ast.AsyncFor | ast.While, state: dict[str, frozenset[int]],
              enter: Callable[[State], State]) -> State:
        """`enter` is what happens at the head on every pass: the test of a while, the target of a for."""
        # start from what the loop's head held when an enclosing loop's earlier pass analysed it: below the
        # fixpoint for this (larger or equal) state, so the iteration still ends at that fixpoint, sooner
        entry: State = _join(state, self.heads.get(id(node)))
        while True:
            head = enter(entry) if isinstance(node, ast.While) else entry
            self.loops.append(([], []))
            end = self.block(node.body, head if isinstance(node, ast.While) else enter(head))
            breaks, continues = self.loops.pop()
            again = _join(entry, end, *continues)  # the head is reached from before the loop and from its end
            if again == entry:
                break
            entry = again
        self.heads[id(node)] = entry
        return _join(self.block(node.orelse, head), *breaks)  # leaving from the head, or by a break

    def _opaque(self, node: ast.stmt, state: dict[str, frozenset[int]]) -> State:
        """try, with, match: the names bound inside are merged, so every use inside sees the bindings made
        before the statement, and after it those bindings hold. Inside a loop it may also break or continue."""
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and child.id in self.names and isinstance(child.ctx, ast.Load):
                self.use(child, state)
        if self.loops:
            breaks, continues = self.loops[-1]
            breaks.append(state)
            continues.append(state)
        return state
