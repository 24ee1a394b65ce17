"""What every built-in task's scorer does first: read a candidate's returned data as numbers of the expected
shape, refusing anything else (bools, strings, NaN, inf, ragged lists) with a reason a model can act on."""

from __future__ import annotations

from typing import Any

import numpy as np


class InvalidData(ValueError):
    pass


NON_FINITE_TOKENS = ("nan", "inf", "-inf")  # how the sandbox's JSON carries non-finite floats


def numbers(value: Any, what: str) -> np.ndarray:
    """`value` as a float64 array; only ints and floats are numbers (not bools, strings or None)."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidData(f"{what} is not an array of numbers ({exc})") from None
    if raw.dtype.kind == "U" and np.isin(raw, NON_FINITE_TOKENS).any():
        raise InvalidData(f"{what} holds non-finite values (NaN or inf)")
    if raw.dtype.kind not in "iuf":
        kind = {"b": "booleans", "U": "strings", "S": "bytes", "O": "non-numbers", "c": "complex numbers"}
        raise InvalidData(f"{what} is not an array of numbers (it holds {kind.get(raw.dtype.kind, raw.dtype)})")
    array = raw.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InvalidData(f"{what} holds non-finite values (NaN or inf)")
    return np.ascontiguousarray(array)


def as_array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = numbers(value, what)
    if array.shape != shape:
        raise InvalidData(f"{what} has shape {array.shape}, expected {shape}")
    return array


def as_vector(value: Any, min_len: int, max_len: int, what: str) -> np.ndarray:
    array = numbers(value, what)
    if array.ndim != 1 or not min_len <= array.shape[0] <= max_len:
        raise InvalidData(f"{what} has shape {array.shape}, expected (n,) with {min_len} <= n <= {max_len}")
    return array
