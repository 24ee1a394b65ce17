"""The one error type tools raise: its message names the problem and the fix."""

from pydantic import ValidationError


class EvoError(Exception):
    pass


def one_line(exc: ValidationError) -> str:
    """A pydantic validation error as one line: each bad field with what is wrong (an unknown field named)."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "the value"
        what = "unknown setting (check its spelling)" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{where}: {what}")
    return "; ".join(parts)
