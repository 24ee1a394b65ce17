"""The genealogy of a run as the browser draws it: chosen and laid out here, sent as compact arrays.

A run of 100,000 programs cannot be drawn node by node, and should not be sent whole. `Genealogy` indexes every
program once (parents, subtree sizes, the best score under each node) and is then updated from what changed;
`Genealogy.view` picks at most `limit` nodes of the tree under `root` (every root, by default): the whole
subtree when it fits; else a window of generations (the newest, or any other: pages), in which it draws the
lineages of the best and of the newest programs up to the window's first generation, so every shown node
hangs from a shown parent or starts the window (its parent is then marked as above it). A shown node whose
other descendants are left out carries how many they are and the best score among them; opening that node
(as the root) shows them. Rows are leaves in depth-first order (children by id), a parent
centred on its children; columns are generations. `genealogy` reads a run's through a workspace, whole once and
then in pieces (tools/scan_cache.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..store import readers
from .scan_cache import CACHE
from .watch import NotFound, run_record
from .watch import finite as _finite
from .workspace import Workspace

# status codes sent to the browser
PENDING, RUNNING, CORRECT, INCORRECT, FAILED = range(5)
MAX_LIMIT = 5000
SPAN = 60  # generations in a window of a tree too large to draw whole


@dataclass
class Genealogy:
    ids: np.ndarray  # int64, ascending
    parent: np.ndarray  # index of the parent, -1 for a root
    island: np.ndarray  # where it is now (the seed: its lowest island)
    generation: np.ndarray
    status: np.ndarray  # codes above
    score: np.ndarray  # float64, nan where not correct
    size: np.ndarray  # programs in the subtree, itself included
    best: np.ndarray  # best correct score in the subtree, -inf where none
    born: np.ndarray  # the island it was proposed on: a migration moved it where `island` differs
    table: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))  # the rows it was built from, id order

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> Genealogy:
        """From `store.readers.tree_rows`: (id, parent id or -1, island now, generation, status code, score or
        None, island proposed on) in id order."""
        return cls.from_table(_table(rows))

    @classmethod
    def from_table(cls, table: np.ndarray) -> Genealogy:
        ids = table[:, 0].astype(np.int64)
        parent_ids = table[:, 1].astype(np.int64)
        n = len(ids)
        generation = table[:, 3].astype(np.int64)
        status = table[:, 4].astype(np.int8)
        score = table[:, 5].copy()  # None became nan
        score[~np.isfinite(score) | (status != CORRECT)] = math.nan
        parent = np.searchsorted(ids, parent_ids) if n else np.zeros(0, np.int64)
        parent[(parent_ids < 0) | (parent >= n)] = -1
        known = parent >= 0
        parent[known] = np.where(ids[parent[known]] == parent_ids[known], parent[known], -1)
        size, best = _subtrees(parent, generation, np.where(np.isnan(score), -np.inf, score))
        tree = cls(ids, parent, table[:, 2].astype(np.int64), generation, status, score, size, best,
                   table[:, 6].astype(np.int64))
        tree.table = table
        return tree

    def updated(self, rows: list[tuple]) -> Genealogy:
        """This genealogy with `rows` (new programs, or programs whose status or island changed) applied: a live
        run is read again in pieces, never whole."""
        table = self.table.copy()
        fresh = _table(rows)
        if len(fresh):
            at = np.searchsorted(table[:, 0], fresh[:, 0])
            old = (at < len(table)) & (table[np.minimum(at, len(table) - 1), 0] == fresh[:, 0])
            table[at[old]] = fresh[old]
            table = np.concatenate([table, fresh[~old]])
            table = table[np.argsort(table[:, 0], kind="stable")]
        return Genealogy.from_table(table)

    def unfinished(self) -> list[int]:
        return self.ids[self.status <= RUNNING].tolist()

    def index(self, program_id: int) -> int | None:
        i = int(np.searchsorted(self.ids, program_id))
        return i if i < len(self.ids) and self.ids[i] == program_id else None

    def _scope(self, root: int | None) -> np.ndarray:
        """The indices under `root` (itself included), or every index."""
        n = len(self.ids)
        if root is None:
            return np.arange(n)
        inside = np.zeros(n, bool)
        inside[root] = True
        parent = self.parent.tolist()
        flags = inside.tolist()
        for i in range(root + 1, n):
            p = parent[i]
            if p >= 0 and flags[p]:
                flags[i] = True
        return np.flatnonzero(np.array(flags, bool))

    def _choose(self, window: np.ndarray, root: int | None, limit: int) -> np.ndarray:
        """Shown indices: the whole window when it fits, else the lineages of its best and newest programs, each
        walked up to a shown node or to the window's first generation (a lineage is then drawn from there)."""
        if len(window) <= limit:
            return window
        inside = np.zeros(len(self.ids), bool)
        inside[window] = True
        shown = np.zeros(len(self.ids), bool)
        count = 0
        if root is not None and inside[root]:
            shown[root], count = True, 1
        correct = window[~np.isnan(self.score[window])]
        by_score = correct[np.lexsort((correct, -self.score[correct]))]  # best first, oldest first among ties
        newest = window[::-1]
        parent = self.parent
        for tried, (a, b) in enumerate(zip(_padded(by_score, len(newest)), newest)):  # a best one, a new one
            for i in (a, b):
                if i < 0 or shown[i]:
                    continue
                path = []
                j = int(i)
                while j >= 0 and inside[j] and not shown[j]:
                    path.append(j)
                    j = int(parent[j])
                if count + len(path) <= limit:
                    shown[path] = True
                    count += len(path)
            if count >= limit or tried > 4 * limit:
                break
        return np.flatnonzero(shown)

    def view(self, root_id: int | None = None, limit: int = 1500, first_generation: int | None = None,
             span: int | None = None) -> dict[str, Any]:
        """Compact arrays for the browser (index-aligned), and what the view leaves out.

        Under `root_id` (else every root); when the programs do not fit in `limit`, or a `first_generation` is
        asked for, a window of `span` generations (by default the newest ones) is shown, and earlier or later
        windows are pages of their own."""
        limit = max(1, min(int(limit), MAX_LIMIT))
        span = span or max(8, min(SPAN, limit // 25))  # a lineage across the window leaves room for others
        n = len(self.ids)
        root = self.index(root_id) if root_id is not None else None
        if root_id is not None and root is None:
            raise KeyError(root_id)
        scope = self._scope(root)
        generations = self.generation[scope]
        low, high = (int(generations.min()), int(generations.max())) if n else (0, 0)
        window, top = scope, None
        if n and (len(scope) > limit or first_generation is not None):
            top = max(low, min(high, int(first_generation))) if first_generation is not None else \
                max(low, high - span + 1)
            window = scope[(generations >= top) & (generations < top + span)]
        shown = self._choose(window, root, limit) if n else scope
        position = np.full(n, -1, np.int64)
        position[shown] = np.arange(len(shown))
        parent = self.parent[shown]
        shown_parent = np.where(parent >= 0, position[np.maximum(parent, 0)], -1)
        cut = (parent >= 0) & (shown_parent < 0)  # a parent exists but is not drawn (above the window)
        if root is not None and position[root] >= 0:
            shown_parent[position[root]] = -1  # the opened node is drawn as a root
        # what each shown node leaves out: descendants not shown, and the best score among them
        shown_below = np.zeros(len(shown), np.int64)
        has_parent = shown_parent >= 0
        np.add.at(shown_below, shown_parent[has_parent], self.size[shown[has_parent]])
        hidden = self.size[shown] - 1 - shown_below
        hidden_best = np.full(len(shown), -np.inf)
        left_out = np.flatnonzero((position < 0) & (self.parent >= 0))
        left_out = left_out[position[self.parent[left_out]] >= 0]  # children of shown nodes that are not shown
        np.maximum.at(hidden_best, position[self.parent[left_out]], self.best[left_out])
        rows = self._layout(shown_parent)
        migrated = self.island[shown] != self.born[shown]
        scores = self.score[shown]
        finite = scores[~np.isnan(scores)]
        best_index = int(np.nanargmax(self.score)) if n and not np.isnan(self.score).all() else None
        return {
            "total": n, "in_scope": int(len(scope)), "in_window": int(len(window)), "shown": int(len(shown)),
            "generations": [low, high], "window": [top, min(high, top + span - 1)] if top is not None else None,
            "span": span,
            "root": int(self.ids[root]) if root is not None else None,
            "best_id": int(self.ids[best_index]) if best_index is not None else None,
            "score_range": [float(finite.min()), float(finite.max())] if len(finite) else None,
            "rows": int(rows.max()) + 1 if len(rows) else 0,
            "ids": self.ids[shown].tolist(),
            "parent": shown_parent.tolist(),
            "generation": self.generation[shown].tolist(),
            "row": rows.tolist(),
            "island": self.island[shown].tolist(),
            "status": self.status[shown].tolist(),
            "score": [None if math.isnan(s) else s for s in scores.tolist()],
            "hidden": hidden.tolist(),
            "hidden_best": [None if math.isinf(b) else b for b in hidden_best.tolist()],
            "migrated": migrated.astype(np.int8).tolist(),
            "cut": cut.astype(np.int8).tolist(),
        }

    @staticmethod
    def _layout(parent: np.ndarray) -> np.ndarray:
        """Row of each node: leaves numbered in depth-first order (children by id), a parent between its first
        and last child."""
        m = len(parent)
        kids: list[list[int]] = [[] for _ in range(m)]
        for i, p in enumerate(parent.tolist()):  # shown nodes are in id order: children come out sorted
            if p >= 0:
                kids[p].append(i)
        row = [0.0] * m
        next_row = 0
        for r in (i for i in range(m) if parent[i] < 0):
            stack = [(r, False)]
            while stack:
                node, done = stack.pop()
                if done:
                    row[node] = (row[kids[node][0]] + row[kids[node][-1]]) / 2
                elif kids[node]:
                    stack.append((node, True))
                    stack.extend((k, False) for k in reversed(kids[node]))
                else:
                    row[node] = next_row
                    next_row += 1
        return np.array(row, np.float64)


def _subtrees(parent: np.ndarray, generation: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Programs under each node (itself included) and the best score among them. A child's generation is its
    parent's plus one, so generations from the deepest up visit children before parents, a level at a time;
    where that does not hold (an archive written otherwise), a loop in id order backwards does the same."""
    n = len(parent)
    size = np.ones(n, np.int64)
    best = score.copy()
    has = parent >= 0
    if np.all(generation[has] > generation[parent[has]]):
        order = np.argsort(-generation, kind="stable")
        levels = np.flatnonzero(np.diff(generation[order])) + 1
        for group in np.split(order, levels):
            group = group[parent[group] >= 0]
            np.add.at(size, parent[group], size[group])
            np.maximum.at(best, parent[group], best[group])
        return size, best
    size_l, best_l, parent_l = size.tolist(), best.tolist(), parent.tolist()
    for i in range(n - 1, -1, -1):  # a parent is older than its children: its index is smaller
        p = parent_l[i]
        if p >= 0:
            size_l[p] += size_l[i]
            best_l[p] = max(best_l[p], best_l[i])
    return np.array(size_l, np.int64), np.array(best_l, np.float64)


def _table(rows: list[tuple]) -> np.ndarray:
    return np.array(rows, np.float64).reshape(len(rows), 7) if rows else np.zeros((0, 7))


def _padded(values: np.ndarray, length: int) -> np.ndarray:
    return np.concatenate([values, np.full(max(0, length - len(values)), -1, np.int64)])


async def genealogy(ws: Workspace, run_id: int, root: int | None, limit: int,
                    first_generation: int | None = None) -> dict[str, Any]:
    """`Genealogy.view` of run `run_id` with its target; NotFound for a run or a root it does not have."""
    run = await run_record(ws, run_id)

    async def index(held: tuple[Genealogy, int] | None) -> tuple[Genealogy, int]:
        """Read once whole, then only what changed: new programs, those that were unfinished, migrations."""
        archive = ws.archive
        if held is None:
            migrated = await readers.last_migration(archive, run_id)  # first: a later move is read next time
            return Genealogy.from_rows(await readers.tree_rows(archive, run_id)), migrated
        tree, migrated = held
        moves = await readers.migrations(archive, run_id, migrated)
        moved = [i for _, move in moves for ids in move.values() for i in ids]  # read again: where they are now
        rows = await readers.tree_rows(archive, run_id, int(tree.ids[-1]) if len(tree.ids) else 0,
                                       tree.unfinished() + moved)
        return tree.updated(rows), moves[-1][0] if moves else migrated
    tree, _ = await CACHE.get(ws, run_id, "tree", index)
    try:
        view = tree.view(root, limit, first_generation)
    except KeyError:
        raise NotFound(f"run {run_id} has no program {root}") from None
    view["target"] = _finite(run.target_score)
    return view
