"""Task directories shipped to cluster workers, content-addressed.

The server packs a task directory into a deterministic tar.gz named by the SHA-256 of its
contents (paths, executable bits, bytes). A worker unpacks each digest once into a cache
under its temporary directory, checks the digest of what it unpacked, and reuses it for
every later evaluation of that task: workers need no shared filesystem, and an edited task
directory is a new digest.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio

SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
MAX_BUNDLE_BYTES = 256 * 1024**2


class BundleError(ValueError):
    pass


def _files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every regular file under root, sorted; symlinks followed, loops cut."""
    found: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            if name.endswith(SKIPPED_SUFFIXES) or not path.is_file():
                continue
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def signature(root: Path) -> tuple:
    """Cheap change detector: paths, sizes, mtimes and modes."""
    out = []
    for rel, path in _files(root):
        st = path.stat()
        out.append((rel, st.st_size, st.st_mtime_ns, st.st_mode & 0o111))
    return tuple(out)


def tree_digest(root: Path) -> str:
    """SHA-256 over (path, executable bit, contents) of every file, in sorted order."""
    h = hashlib.sha256()
    for rel, path in _files(root):
        executable = bool(path.stat().st_mode & stat.S_IXUSR)
        data = path.read_bytes()
        h.update(f"{rel}\0{int(executable)}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def pack(root: Path) -> tuple[str, bytes]:
    """(digest, deterministic tar.gz bytes) of a task directory."""
    files = _files(root)
    total = sum(path.stat().st_size for _, path in files)
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"task directory {root} holds {total} bytes, more than the {MAX_BUNDLE_BYTES} that "
                          f"can be shipped to workers; keep large data out of it")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for rel, path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return tree_digest(root), buffer.getvalue()


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / f"evomcp-tasks-{os.getuid()}"


def cached(digest: str, root: Path | None = None) -> Path | None:
    path = (root or cache_root()) / digest
    return path if path.is_dir() else None


def _extract_plain(tar: tarfile.TarFile, target: Path) -> None:
    """Extract only plain files and folders with relative names inside `target` (what `pack` writes);
    the same as tarfile's "data" filter, which Pythons before 3.11.4 lack."""
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise BundleError(f"the task bundle holds an entry that is not a plain file: {member.name!r}")
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
    else:
        tar.extractall(target)


def unpack(digest: str, data: bytes, root: Path | None = None) -> Path:
    """Unpack a bundle into the cache (atomically: unpack aside, check the digest, rename)."""
    root = root or cache_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = root / digest
    if final.is_dir():
        return final
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            _extract_plain(tar, staging)
        actual = tree_digest(staging)
        if actual != digest:
            raise BundleError(f"the task bundle unpacked to digest {actual[:12]}, not {digest[:12]}")
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # someone else won the race with the same content: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


@dataclass(frozen=True)
class Bundle:
    digest: str
    data: bytes


class Bundles:
    """Server side: each task directory packed once, re-packed only when its files change."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple, Bundle]] = {}
        self.packed = 0

    def _get(self, source: str) -> Bundle:
        root = Path(source)
        sig = signature(root)
        hit = self._cache.get(source)
        if hit is not None and hit[0] == sig:
            return hit[1]
        digest, data = pack(root)
        bundle = Bundle(digest, data)
        self._cache[source] = (sig, bundle)
        self.packed += 1
        return bundle

    async def get(self, source: str) -> Bundle:
        return await anyio.to_thread.run_sync(self._get, source)
