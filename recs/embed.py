"""Truncated SVD of the ratings pivot: one unit-length vector per rated movie."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse.linalg import svds
from threadpoolctl import threadpool_limits

from recs.errors import InputError
from recs.ingest import Ratings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Embeddings:
    """Movie vectors with their ids.

    vectors: (n_movies, dim) float32, unit L2 norm (cosine similarity = dot product).
    movie_ids: (n_movies,) int64, ascending, the same order as the rows of `vectors`.
    """

    vectors: NDArray[np.float32]
    movie_ids: NDArray[np.int64]


def truncated_svd(
    matrix, dim: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The top-`dim` singular triplets of `matrix` (n_users, n_movies), largest first.

    Returns U (n_users, dim), s (dim,), Vt (dim, n_movies), float64. Deterministic: a seeded
    start vector, one BLAS thread (threaded reductions change the last bits), and each
    component's sign fixed so that its largest movie loading is positive.
    """
    n_users, n_movies = matrix.shape
    if dim >= min(n_users, n_movies):
        raise InputError(
            f"the ratings matrix is {n_users} users x {n_movies} movies, too small for "
            f"--dim {dim}: use --dim below {min(n_users, n_movies)}"
        )
    v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, size=min(n_users, n_movies))
    with threadpool_limits(limits=1, user_api="blas"):
        u, s, vt = svds(matrix.astype(np.float64), k=dim, v0=v0, solver="arpack")
    order = np.argsort(-s, kind="stable")
    u, s, vt = u[:, order], s[order], vt[order]
    pivots = np.abs(vt).argmax(axis=1)
    signs = np.sign(vt[np.arange(dim), pivots])
    signs[signs == 0] = 1.0
    return u * signs, s, vt * signs[:, None]


def normalize_rows(x: NDArray) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), as float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32)


def embed(ratings: Ratings, dim: int, seed: int = 0) -> Embeddings:
    """Movie vectors: the right singular vectors scaled by the singular values, unit-normalised.

    Scaling by s keeps the strong taste axes dominant; unit norm makes the neighbour search
    cosine, so rarely rated movies (short vectors) do not crowd together near the origin.
    """
    started = time.perf_counter()
    _, s, vt = truncated_svd(ratings.matrix, dim, seed)
    vectors = normalize_rows((vt * s[:, None]).T)
    log.info(
        "embedded %d movies in %d dimensions in %.2f s",
        len(ratings.movie_ids), dim, time.perf_counter() - started,
    )
    return Embeddings(vectors=vectors, movie_ids=ratings.movie_ids)
