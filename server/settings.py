"""Where the archive lives and other process-wide settings, from flags and the environment."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """$EVOMCP_HOME, else $XDG_DATA_HOME/evomcp, else ~/.local/share/evomcp."""
    if os.environ.get("EVOMCP_HOME"):
        return Path(os.environ["EVOMCP_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "evomcp"


def default_db() -> Path:
    """$EVOMCP_DB, else archive.db in the data directory."""
    if os.environ.get("EVOMCP_DB"):
        return Path(os.environ["EVOMCP_DB"]).expanduser()
    return data_dir() / "archive.db"
