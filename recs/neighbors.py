"""Every movie's top-k most similar movies: an exact in-process engine and a LanceDB engine.

Both engines only propose candidates; the final scores and order come from one shared function
(`pair_scores`, then rank by score and movie id), so the two engines publish identical lists.
When a candidate pool cannot prove its k-th place (ties or near-ties at its edge), that query
is scored against every movie instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recs.embed import Embeddings

log = logging.getLogger(__name__)

# float32 dot products of unit vectors are within ~1e-6 of exact; anything closer to the
# k-th score than this might belong in the list, so the row is re-scored in full.
EDGE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Neighbors:
    """Ranked lists for a set of query movies.

    movie_ids: (n,) int64 query movie ids. neighbor_ids: (n, k) int64, best first.
    scores: (n, k) float32 cosine similarity in [-1, 1], non-increasing along each row;
    equal scores are ordered by neighbor id.
    """

    movie_ids: NDArray[np.int64]
    neighbor_ids: NDArray[np.int64]
    scores: NDArray[np.float32]

    @staticmethod
    def concat(parts: list[Neighbors]) -> Neighbors:
        return Neighbors(
            movie_ids=np.concatenate([p.movie_ids for p in parts]),
            neighbor_ids=np.concatenate([p.neighbor_ids for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
        )


# Proposes candidates for the query rows `rows` (b,): candidate rows (b, m) and, per query,
# the lowest approximate score in its pool (b,), which bounds every movie left out.
Proposer = Callable[[NDArray[np.int64]], tuple[NDArray[np.int64], NDArray[np.float64]]]


def pair_scores(
    vectors: NDArray[np.float32], rows: NDArray[np.int64], cands: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Cosine similarity of each query row with its candidates, (b,) x (b, m) -> (b, m) float32.

    Summed in float64 in a fixed order, so a pair's score does not depend on the engine,
    the batch, or the number of BLAS threads. A candidate of -1 (none) scores -inf.
    """
    q = vectors[rows].astype(np.float64)[:, None, :]
    c = vectors[cands].astype(np.float64)
    scores = (q * c).sum(axis=-1).astype(np.float32)
    scores[cands < 0] = -np.inf
    return scores


def rank(
    movie_ids: NDArray[np.int64], cands: NDArray[np.int64], scores: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The best k of each row's candidates by (score desc, movie id asc): rows (b, k)."""
    b, m = cands.shape
    row = np.repeat(np.arange(b), m)
    order = np.lexsort((movie_ids[cands].ravel(), -scores.ravel(), row)).reshape(b, m) % m
    order = order[:, :k]
    return np.take_along_axis(cands, order, 1), np.take_along_axis(scores, order, 1)


def _rank_full(
    emb: Embeddings, rows: NDArray[np.int64], eligible: NDArray[np.bool_], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top-k of `rows` (u,) against every eligible movie, scored in float64: (u, k) each.

    Only the k-th score's ties are sorted, so a cluster of equal scores costs little.
    """
    everyone = np.flatnonzero(eligible)
    sims = (emb.vectors[rows].astype(np.float64) @ emb.vectors[everyone].astype(np.float64).T)
    sims = sims.astype(np.float32)
    sims[everyone[None, :] == rows[:, None]] = -np.inf
    kth = np.partition(sims, -k, axis=1)[:, -k]
    top = np.empty((len(rows), k), np.int64)
    scores = np.empty((len(rows), k), np.float32)
    for i in range(len(rows)):
        best = np.flatnonzero(sims[i] >= kth[i])  # ascending position = ascending movie id
        best = best[np.argsort(-sims[i, best], kind="stable")[:k]]
        top[i], scores[i] = everyone[best], sims[i, best]
    return top, scores


def finish(
    emb: Embeddings,
    rows: NDArray[np.int64],
    cands: NDArray[np.int64],
    floor: NDArray[np.float64],
    eligible: NDArray[np.bool_],
    k: int,
) -> tuple[NDArray[np.int64], NDArray[np.float32], int]:
    """Exact scores and order for proposed candidates; rows whose k-th place is not proven
    by the pool (k-th score within EDGE_TOLERANCE of `floor`) are re-scored against every
    eligible movie. Returns neighbour rows (b, k), scores (b, k), and the number re-scored.
    """
    top, scores = rank(emb.movie_ids, cands, pair_scores(emb.vectors, rows, cands), k)
    unproven = np.flatnonzero(scores[:, -1] <= floor + EDGE_TOLERANCE)
    for start in range(0, len(unproven), 256):
        chunk = unproven[start : start + 256]
        top[chunk], scores[chunk] = _rank_full(emb, rows[chunk], eligible, k)
    return top, scores, len(unproven)


def exact_proposer(emb: Embeddings, eligible: NDArray[np.bool_], pool: int) -> Proposer:
    """Candidates from a float32 matrix product against every movie (blocked by the caller).

    The floor is -inf when the pool already holds every eligible movie.
    """
    banned = ~eligible

    def propose(rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        sims = emb.vectors[rows] @ emb.vectors.T  # (b, n) float32
        sims[:, banned] = -np.inf
        sims[np.arange(len(rows)), rows] = -np.inf
        m = min(pool, sims.shape[1])
        cands = np.argpartition(sims, -m, axis=1)[:, -m:]
        pooled = np.take_along_axis(sims, cands, 1)
        return np.where(pooled == -np.inf, -1, cands), pooled.min(axis=1).astype(np.float64)

    return propose


def lancedb_proposer(emb: Embeddings, eligible: NDArray[np.bool_], pool: int, table) -> Proposer:
    """Candidates from one LanceDB batch search per block of queries (cosine, flat scan)."""
    from recs.store import batch_search

    def propose(rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        ids, sims = batch_search(table, emb.vectors[rows], pool + 1)
        found = ids >= 0
        cands = np.searchsorted(emb.movie_ids, np.where(found, ids, emb.movie_ids[0]))
        # a short answer means LanceDB returned every movie: nothing was left out
        floor = np.where(found.all(axis=1), sims.min(axis=1), -np.inf)
        keep = found & eligible[cands] & (cands != rows[:, None])
        return np.where(keep, cands, -1), floor

    return propose


def topk(
    emb: Embeddings,
    k: int,
    propose: Proposer,
    eligible: NDArray[np.bool_],
    batch_size: int = 1024,
    rows: NDArray[np.int64] | None = None,
) -> Iterator[Neighbors]:
    """Top-k lists for the query rows `rows` (default: every movie), one `Neighbors` per batch.

    Any range of rows can be computed on its own from the embeddings alone: shards of one
    catalog can run anywhere and be concatenated in any order.
    """
    rows = np.arange(len(emb.movie_ids)) if rows is None else rows
    rescored, started = 0, time.perf_counter()
    for start in range(0, len(rows), batch_size):
        block = rows[start : start + batch_size]
        cands, floor = propose(block)
        top, scores, n = finish(emb, block, cands, floor, eligible, k)
        rescored += n
        yield Neighbors(emb.movie_ids[block], emb.movie_ids[top], scores)
    log.info(
        "ranked top-%d for %d movies in %.2f s (%d re-scored in full at a tied edge)",
        k, len(rows), time.perf_counter() - started, rescored,
    )
