"""In-memory index of a run's programs: what selection, counts and elites need, as numpy arrays.

SQLite stays the source of truth; this index is rebuilt from it when a run is first used
and then kept in step by the tools that write (propose, evaluate, migrate, seed). It turns
per-call table scans (children counts, status counts, an island's pool, top-k) into a few
vectorised operations, which is what keeps sample_parent in the low milliseconds on runs of
a million programs. One server process writes an archive file at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

STATUSES = ("pending", "running", "evaluated", "failed")
_CODE = {name: i for i, name in enumerate(STATUSES)}


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class Population:
    def __init__(self, capacity: int = 1024):
        self._pos: dict[int, int] = {}
        self._seeded = False  # a parentless program (the seed) is in
        self.size = 0
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.parent_pos = np.full(capacity, -1, dtype=np.int64)
        self.island = np.zeros(capacity, dtype=np.int32)
        self.generation = np.zeros(capacity, dtype=np.int32)
        self.status = np.zeros(capacity, dtype=np.int8)
        self.correct = np.zeros(capacity, dtype=bool)
        self.score = np.full(capacity, np.nan)
        self.children = np.zeros(capacity, dtype=np.int32)
        self.copy = np.zeros(capacity, dtype=bool)  # the seed's copy on another island: not a program of its own
        self._cache: dict[tuple, object] = {}
        self._pool_cache: dict[tuple, object] = {}  # what depends on the pools only: kept until a pool changes

    def _changed(self, pool: bool = True) -> None:
        """Drop cached answers. pool=False when no pool changed (a new pending program, pending to running):
        the pools, their top-k and what selection memoises on their score arrays then survive."""
        self._cache.clear()
        if pool:
            self._pool_cache.clear()

    def _in_pool(self, i: int) -> bool:
        return bool(self.correct[i] and self.status[i] == _CODE["evaluated"] and not np.isnan(self.score[i]))

    # building ----------------------------------------------------------------

    def _grow(self) -> None:
        for name in ("ids", "parent_pos", "island", "generation", "status", "correct", "score", "children", "copy"):
            old = getattr(self, name)
            new = np.empty(2 * len(old), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self.parent_pos[self.size :] = -1
        self.score[self.size :] = np.nan
        self.children[self.size :] = 0
        self.copy[self.size :] = False

    def add(self, program_id: int, parent_id: int | None, island: int, generation: int, status: str = "pending",
            correct: bool | None = None, score: float | None = None) -> None:
        if program_id in self._pos:
            return
        if self.size == len(self.ids):
            self._grow()
        i = self.size
        self._pos[program_id] = i
        self.ids[i] = program_id
        parent = self._pos.get(parent_id, -1) if parent_id is not None else -1
        self.parent_pos[i] = parent
        if parent >= 0:
            self.children[parent] += 1
        self.island[i] = island
        self.generation[i] = generation
        self.status[i] = _CODE[status]
        self.correct[i] = bool(correct)
        self.score[i] = np.nan if score is None else score
        self.children[i] = 0
        self.copy[i] = parent_id is None and self._seeded
        self._seeded = self._seeded or parent_id is None
        self.size += 1
        self._changed(pool=self._in_pool(i))

    @classmethod
    def from_rows(cls, rows: Iterable) -> Population:
        """Rows of (id, parent_id, island, generation, status, correct, combined_score), oldest first.

        Vectorised: a million rows load in about a second.
        """
        rows = list(rows)
        n = len(rows)
        population = cls(capacity=max(1024, 2 * n))
        if n == 0:
            return population
        ids, parents, islands, generations, statuses, corrects, scores = zip(*rows)
        population.ids[:n] = ids
        population._pos = {program_id: i for i, program_id in enumerate(ids)}
        pos = population._pos
        parent_pos = np.fromiter((pos.get(p, -1) if p is not None else -1 for p in parents), np.int64, n)
        population.parent_pos[:n] = parent_pos
        population.island[:n] = islands
        population.generation[:n] = generations
        population.status[:n] = [_CODE[s] for s in statuses]
        population.correct[:n] = [bool(c) for c in corrects]
        population.score[:n] = [np.nan if v is None else v for v in scores]
        roots = np.flatnonzero(np.fromiter((p is None for p in parents), bool, n))
        population.copy[roots[1:]] = True  # parentless programs after the first are the seed's island copies
        population._seeded = len(roots) > 0
        linked = parent_pos[parent_pos >= 0]
        population.children[:n] = np.bincount(linked, minlength=n)[:n] if len(linked) else 0
        population.size = n
        return population

    # updates -----------------------------------------------------------------

    def set_status(self, program_id: int, status: str) -> None:
        i = self._pos.get(program_id)
        if i is not None:
            was = self._in_pool(i)
            self.status[i] = _CODE[status]
            self._changed(pool=was or self._in_pool(i))

    def set_result(self, program_id: int, status: str, correct: bool, score: float | None) -> None:
        i = self._pos.get(program_id)
        if i is not None:
            was = self._in_pool(i)
            self.status[i] = _CODE[status]
            self.correct[i] = correct
            self.score[i] = np.nan if score is None else score
            self._changed(pool=was or self._in_pool(i))

    def move(self, program_ids: Iterable[int], island: int) -> None:
        for program_id in program_ids:
            i = self._pos.get(program_id)
            if i is not None:
                self.island[i] = island
        self._changed()

    # queries -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Programs by status, the seed once (its copies on other islands are the same program)."""
        if "counts" not in self._cache:
            n = self.size
            tally = np.bincount(self.status[:n][~self.copy[:n]], minlength=len(STATUSES))
            self._cache["counts"] = {name: int(k) for name, k in zip(STATUSES, tally) if k}
        return dict(self._cache["counts"])  # type: ignore[arg-type]

    def evaluations(self) -> int:
        """Evaluations that finished (evaluated or failed): the seed once, and every candidate."""
        counts = self.counts()
        return counts.get("evaluated", 0) + counts.get("failed", 0)

    def candidates_evaluated(self) -> int:
        """Evaluations that finished of programs with a parent: what evaluation budgets count (not the seed)."""
        n = self.size
        done = (self.status[:n] == _CODE["evaluated"]) | (self.status[:n] == _CODE["failed"])
        return int((done & (self.parent_pos[:n] >= 0)).sum())

    def _correct_positions(self, island: int | None) -> np.ndarray:
        key = ("positions", island)
        if key not in self._pool_cache:
            self._pool_cache[key] = np.flatnonzero(self._correct_mask(island))
        return self._pool_cache[key]  # type: ignore[return-value]

    def _correct_mask(self, island: int | None) -> np.ndarray:
        n = self.size
        mask = self.correct[:n] & (self.status[:n] == _CODE["evaluated"]) & ~np.isnan(self.score[:n])
        if island is not None:
            mask &= self.island[:n] == island
        return mask

    def pool(self, island: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, children, generations) of the correct evaluated programs of an island.

        Read-only arrays, the same objects until the pool changes (children: until any change), so that
        selection can memoise what it derives from the scores (selection._Memo).
        """
        key = ("pool", island)
        if key not in self._pool_cache:
            where = self._correct_positions(island)
            self._pool_cache[key] = tuple(_frozen(a[where]) for a in (self.ids, self.score, self.generation))
        ids, scores, generations = self._pool_cache[key]  # type: ignore[misc]
        key = ("children", island)
        if key not in self._cache:
            self._cache[key] = _frozen(self.children[self._correct_positions(island)])
        return ids, scores, self._cache[key], generations  # type: ignore[return-value]

    def top_ids(self, k: int, island: int | None = None) -> list[int]:
        """The k best correct programs, best first (ties: the older first)."""
        key = ("top", k, island)
        if key not in self._pool_cache:
            self._pool_cache[key] = self._top_ids(k, island)
        return list(self._pool_cache[key])  # type: ignore[arg-type]

    def _top_ids(self, k: int, island: int | None) -> list[int]:
        where = self._correct_positions(island)
        if len(where) == 0 or k <= 0:
            return []
        scores = self.score[where]
        if len(where) > k:  # keep every program tied with the k-th score, then order exactly
            kth = -np.partition(-scores, k - 1)[k - 1]
            keep = scores >= kth
            where, scores = where[keep], scores[keep]
        order = np.lexsort((self.ids[where], -scores))
        return [int(self.ids[i]) for i in where[order][:k]]

    def score_of(self, program_id: int | None) -> float | None:
        """A program's combined score (None: no score, or not a program of this run)."""
        i = self._pos.get(program_id)
        return None if i is None or np.isnan(self.score[i]) else float(self.score[i])

    def best_score(self) -> float | None:
        top = self.top_ids(1)
        return self.score_of(top[0]) if top else None

    def island_stats(self) -> dict[int, dict[str, float | int | None]]:
        if "islands" in self._cache:
            return self._cache["islands"]  # type: ignore[return-value]
        n = self.size
        programs = np.bincount(self.island[:n])
        correct = np.bincount(self.island[:n], weights=self.correct[:n], minlength=len(programs))
        stats = {}
        for island in np.flatnonzero(programs):
            top = self.top_ids(1, int(island))
            stats[int(island)] = {
                "programs": int(programs[island]),
                "correct": int(correct[island]),
                "best_id": top[0] if top else None,
                "best_score": self.score_of(top[0]) if top else None,
            }
        self._cache["islands"] = stats
        return stats
