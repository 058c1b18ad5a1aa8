"""Top-k of dense score rows with deterministic, well-spread tie breaking.

Exact ties are common in item-to-item lists (movies rated by the same few users score alike).
Breaking them by movie id would push the same low-id movies into thousands of lists and collapse
catalog coverage, so ties are broken by a fixed hash of (query id, candidate id): the same run
gives the same lists, and different queries break their ties differently.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_MAX = np.iinfo(np.uint64).max


def tie_hash(query_ids: NDArray[np.int64], cand_ids: NDArray[np.int64]) -> NDArray[np.uint64]:
    """splitmix64 of (query id, candidate id), broadcast: a fixed pseudo-random order per pair."""
    with np.errstate(over="ignore"):
        z = query_ids.astype(np.uint64) * _M1 + cand_ids.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _M2
        z = (z ^ (z >> np.uint64(27))) * _M3
        return z ^ (z >> np.uint64(31))


def order_rows(
    query_ids: NDArray[np.int64], cand_ids: NDArray[np.int64], *scores: NDArray
) -> NDArray[np.int64]:
    """Per row, the column order by (each of `scores` desc, first first; then tie_hash asc):
    (b, m) positions into the row.

    query_ids (b,), cand_ids (b, m), each of scores (b, m).
    """
    b, m = cand_ids.shape
    keys = tie_hash(query_ids[:, None], cand_ids)
    row = np.repeat(np.arange(b), m)
    order = np.lexsort((keys.ravel(), *[-s.ravel() for s in reversed(scores)], row))
    return (order % m).reshape(b, m) if m else order.reshape(b, 0)


def top_dense(
    scores: NDArray[np.float32],
    query_ids: NDArray[np.int64],
    cand_ids: NDArray[np.int64],
    k: int,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The best k columns of each score row, ties broken by `tie_hash`.

    scores: (b, n) float32, -inf marks a column that must not be chosen (the query itself, an
    ineligible movie). query_ids (b,), cand_ids (n,) the ids of the columns. Returns ids (b, k)
    (-1 where fewer than k columns are allowed) and their scores (b, k).
    """
    b, n = scores.shape
    k_eff = min(k, n)
    ids = np.full((b, k), -1, np.int64)
    out = np.full((b, k), -np.inf, np.float32)
    if k_eff == 0 or b == 0:
        return ids, out
    # negated, the k best are the k smallest: much faster than the k largest when most
    # scores are equal (zeros), as in sparse co-occurrence rows
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    kth = np.take_along_axis(scores, part, 1).min(axis=1)
    n_at_least = (scores >= kth[:, None]).sum(axis=1)
    fast = n_at_least == k_eff  # no tie straddles the k-th place
    rows = np.flatnonzero(fast)
    if len(rows):
        cols = part[rows]
        sc = np.take_along_axis(scores[rows], cols, 1)
        o = order_rows(query_ids[rows], cand_ids[cols], sc)
        ids[rows, :k_eff] = cand_ids[np.take_along_axis(cols, o, 1)]
        out[rows, :k_eff] = np.take_along_axis(sc, o, 1)
    slow = np.flatnonzero(~fast)
    for start in range(0, len(slow), 256):
        rows = slow[start : start + 256]
        sc_rows = scores[rows]
        # every column above the k-th score, plus the k tied columns of smallest hash
        cols = part[rows]
        above = np.take_along_axis(sc_rows, cols, 1) > kth[rows, None]
        tied = sc_rows == kth[rows, None]
        keys = np.where(tied, tie_hash(query_ids[rows, None], cand_ids[None, :]), _MAX)
        tied_cols = np.argpartition(keys, k_eff - 1, axis=1)[:, :k_eff]
        pool = np.concatenate([cols, tied_cols], axis=1)
        sc = np.take_along_axis(sc_rows, pool, 1)
        m = cols.shape[1]
        sc[:, :m][~above] = -np.inf  # tied ones come from tied_cols instead
        sc[:, m:][~np.take_along_axis(tied, tied_cols, 1)] = -np.inf  # fewer than k tied
        o = order_rows(query_ids[rows], cand_ids[pool], sc)[:, :k_eff]
        ids[rows, :k_eff] = cand_ids[np.take_along_axis(pool, o, 1)]
        out[rows, :k_eff] = np.take_along_axis(sc, o, 1)
    ids[~np.isfinite(out)] = -1
    return ids, out
