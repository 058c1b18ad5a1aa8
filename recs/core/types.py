"""The arrays that travel between stages, each with the ids of its rows and columns.

Ids are keys, never positions: every matrix here carries its id arrays, and stages join by id
(np.searchsorted on the ascending id arrays), so any subset or shard of movies stays labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray
from scipy import sparse


@dataclass(frozen=True)
class Ratings:
    """The users x movies ratings pivot, sparse, with the ids of its rows and columns.

    matrix: (n_users, n_movies) float32 CSR, 0.5-5.0 stars where rated, no stored zeros,
    sorted indices. user_ids: (n_users,) int64, ascending. movie_ids: (n_movies,) int64,
    ascending. rated_at: (nnz,) int64 seconds of each stored rating, aligned with matrix.data
    (the order in which each user rated); None when unknown.
    """

    matrix: sparse.csr_array
    user_ids: NDArray[np.int64]
    movie_ids: NDArray[np.int64]
    rated_at: NDArray[np.int64] | None = None


@dataclass(frozen=True)
class Embeddings:
    """Movie vectors with their ids.

    vectors: (n_movies, dim) float32, unit L2 norm (cosine similarity = dot product).
    movie_ids: (n_movies,) int64, ascending, the same order as the rows of `vectors`.
    """

    vectors: NDArray[np.float32]
    movie_ids: NDArray[np.int64]


@dataclass(frozen=True)
class Neighbors:
    """Ranked lists for a set of query movies.

    movie_ids: (n,) int64 query movie ids. neighbor_ids: (n, k) int64, best first, -1 where a
    list is short. scores: (n, k) float32, non-increasing along each row (-inf past the end).
    """

    movie_ids: NDArray[np.int64]
    neighbor_ids: NDArray[np.int64]
    scores: NDArray[np.float32]

    @classmethod
    def concat(cls, parts: list) -> Neighbors:
        """The rows of `parts` (all of this class), in the order given."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                      for f in fields(cls)})


@dataclass(frozen=True)
class RankedNeighbors(Neighbors):
    """`Neighbors` after the re-rank. scores: (n, k) float32 re-rank score (not cosine);
    cosine: (n, k) float32 SVD cosine; co_watchers: (n, k) int32 users who rated both;
    close_watchers: (n, k) int32 those who rated both within `close_window` ratings;
    next_watchers: (n, k) int32 those who rated the neighbour 1 to `next_window` ratings
    after the movie. Slots without a neighbour hold id -1, score -inf, cosine -inf, counts 0."""

    cosine: NDArray[np.float32]
    co_watchers: NDArray[np.int32]
    close_watchers: NDArray[np.int32]
    next_watchers: NDArray[np.int32]
