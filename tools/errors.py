"""The one error type tools raise: its message names the problem and the fix."""


class EvoError(Exception):
    pass
