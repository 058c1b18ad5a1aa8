"""The recipe: (ratings, embeddings, settings) -> every listed movie's ranked neighbours.

    eligible movies -> candidate pool per query movie (its `pool` nearest by cosine, from the
    configured engine) -> exact top-`pool` -> re-rank by the people who watched both -> top k

`prepare` builds the read-only inputs once per run; `rank` runs the chain for any contiguous
range [start, stop) of the query movies. Ranges are independent, so their results can be
computed anywhere and concatenated in any order (`write.sort_lists` orders them by movie id).
The nightly job, `recs evaluate`, the top-k bench and the re-rank tuner all call this module;
a cluster fans out exactly `rank` over ranges.

Which movies take part: a movie needs `min_support` ratings both to get a list and to appear
in one, so coverage is measured over one set. Below that its vector is noise: a movie rated
once gets the direction of its single rater, identical for every movie that user alone rated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recs.core.settings import Settings
from recs.core.types import Embeddings, Neighbors, RankedNeighbors, Ratings
from recs.stages import neighbors, rerank

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Prepared:
    """The recipe's read-only inputs for one catalog.

    emb: the movie vectors (rows in the order of ratings.movie_ids). counts: who watched what
    (`rerank.Counts`). eligible: (n_movies,) bool, may appear in lists. queries: (q,) int64
    rows of the movies that get a list, ascending. pool: candidates per query movie.
    """

    emb: Embeddings
    counts: rerank.Counts
    eligible: NDArray[np.bool_]
    queries: NDArray[np.int64]
    pool: int


def prepare(ratings: Ratings, emb: Embeddings, settings: Settings) -> Prepared:
    """The inputs every range shares; emb must cover ratings.movie_ids, in the same order."""
    counts = rerank.Counts.of(ratings, settings)
    ok = rerank.listed(counts.support, settings)  # counts.support: the ratings per movie
    return Prepared(
        emb=emb,
        counts=counts,
        eligible=ok,
        queries=np.flatnonzero(ok),
        pool=max(min(settings.pool, int(ok.sum()) - 1), 1),  # the query itself is never a candidate
    )


def candidates(
    prep: Prepared, settings: Settings, start: int = 0, stop: int | None = None,
    progress: Progress | None = None,
) -> Neighbors:
    """Pools of prep.pool nearest eligible movies by cosine for queries[start:stop], from the
    configured engine (both engines give identical pools). progress(n) after each batch."""
    rows = prep.queries[start:stop]
    parts = []
    with neighbors.proposer(prep.emb, prep.eligible, prep.pool, settings.engine) as propose:
        for part in neighbors.topk(prep.emb, prep.pool, propose, prep.eligible,
                                   settings.batch_size, rows):
            parts.append(part)
            if progress:
                progress(len(part.movie_ids))
    if not parts:
        return Neighbors(prep.emb.movie_ids[:0], np.empty((0, prep.pool), np.int64),
                         np.empty((0, prep.pool), np.float32))
    return Neighbors.concat(parts)


def order(
    prep: Prepared, settings: Settings, pools: Neighbors, threads: int | None = None
) -> RankedNeighbors:
    """The re-rank of `pools` (from `candidates`) to settings.top_k."""
    return rerank.rerank(prep.counts, pools, settings.top_k, settings, prep.emb, threads)


def rank(
    prep: Prepared, settings: Settings, start: int = 0, stop: int | None = None,
    progress: Progress | None = None,
) -> RankedNeighbors:
    """Ranked lists of queries[start:stop], ascending by movie id: the whole recipe for one
    contiguous range of query movies."""
    return order(prep, settings, candidates(prep, settings, start, stop, progress))


def recommend(
    ratings: Ratings, emb: Embeddings, settings: Settings, progress: Progress | None = None
) -> RankedNeighbors:
    """Every listed movie's ranked list: `rank` over the whole catalog."""
    return rank(prepare(ratings, emb, settings), settings, progress=progress)
