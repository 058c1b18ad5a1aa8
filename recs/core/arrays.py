"""np.unique's three uses by one sort each: numpy 2.4's np.unique takes a hash-based pass that
was 6-75x slower on the 10^5-10^7 integers the re-rank and the writer group."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _firsts(ordered: NDArray) -> NDArray[np.bool_]:
    """Where each run of equal values in a sorted array starts."""
    first = np.ones(len(ordered), np.bool_)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return first


def distinct(values: NDArray) -> NDArray:
    """np.unique(values): the distinct values, ascending."""
    ordered = np.sort(values)
    return ordered[_firsts(ordered)]


def distinct_counts(values: NDArray) -> tuple[NDArray, NDArray[np.int32]]:
    """np.unique(values, return_counts=True), the counts as int32."""
    ordered = np.sort(values)
    at = np.flatnonzero(_firsts(ordered))
    return ordered[at], np.diff(np.append(at, len(ordered))).astype(np.int32)


def distinct_inverse(values: NDArray) -> tuple[NDArray, NDArray[np.int64]]:
    """np.unique(values, return_inverse=True): the distinct values, ascending, and per value
    its index in them."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = _firsts(ordered)
    at = np.empty(len(values), np.int64)
    at[order] = np.cumsum(first) - 1
    return ordered[first], at
