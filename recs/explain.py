"""Why a neighbour is on a list: how many users rated both movies, and the genres they share."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from recs.ingest import Ratings
from recs.neighbors import Neighbors


def watched_by(ratings: Ratings) -> sparse.csc_array:
    """(n_users, n_movies) 0/1 int32 matrix of who rated what, column-major for movie slices."""
    seen = ratings.matrix.copy()
    seen.data = np.ones_like(seen.data, dtype=np.int32)
    return sparse.csc_array(seen.astype(np.int32))


def co_watchers(seen: sparse.csc_array, movie_ids: NDArray[np.int64], lists: Neighbors) -> NDArray:
    """Users who rated both the query and each neighbour: (n, k) int32, same shape as the lists.

    An element-wise product of the two movies' user columns per listed pair, so the cost
    follows the pairs' ratings, not the catalog size.
    """
    q_cols = np.repeat(np.searchsorted(movie_ids, lists.movie_ids), lists.neighbor_ids.shape[1])
    n_cols = np.searchsorted(movie_ids, lists.neighbor_ids.ravel())
    both = seen[:, q_cols].multiply(seen[:, n_cols]).sum(axis=0)
    return np.asarray(both, dtype=np.int32).reshape(lists.neighbor_ids.shape)


def shared_genres(genres: list[str], other: list[str]) -> list[str]:
    """Genres of `other` that `genres` also has, in `other`'s order."""
    mine = set(genres)
    return [g for g in other if g in mine]
