"""Which executor a command gets: the local sandbox, or a Ray or Dask cluster (`--executor`, `--cluster`).

Its own module so that evaluators/remote.py, which the Ray and Dask backends build on, imports neither
of them (no import cycle); each backend is imported only when asked for (Ray and Dask are extras)."""

from __future__ import annotations

from .executor import Executor
from .remote import BACKENDS, BackendError


def make_executor(backend: str, cluster: str = "", slots: int | None = None, isolate: bool = True,
                  hide: tuple[str, ...] = ()) -> Executor:
    """An executor for the CLI's --executor/--cluster; remote ones connect on `start()` / `async with`."""
    if backend == "local":
        if cluster:
            raise BackendError("--cluster needs --executor ray or --executor dask")
        from .executor import LocalExecutor

        return LocalExecutor(slots, isolate=isolate, hide=hide)
    if backend == "ray":
        from .ray_backend import RayExecutor

        return RayExecutor(cluster, slots, isolate=isolate, hide=hide)
    if backend == "dask":
        from .dask_backend import DaskExecutor

        return DaskExecutor(cluster, slots, isolate=isolate, hide=hide)
    raise BackendError(f"unknown executor {backend!r}; choose one of {', '.join(BACKENDS)}")
