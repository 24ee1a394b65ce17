"""Process-level protections of the server itself."""

from __future__ import annotations

import ctypes
import sys

PR_SET_DUMPABLE = 4


def make_undumpable() -> bool:
    """Stop same-user processes from reading this process's memory and /proc/<pid>/environ.

    The server's environment holds API keys; where candidates cannot be put in their own
    namespaces they run as the same user, and this keeps those keys out of their reach.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
