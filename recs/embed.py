"""Truncated SVD of the ratings pivot: one unit-length vector per rated movie."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.linalg import svds
from threadpoolctl import threadpool_limits

from recs.errors import InputError
from recs.ingest import Ratings
from recs.settings import Settings

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


def svd_input(matrix: sparse.csr_array, binary: bool, user_power: float, movie_power: float):
    """The matrix the SVD factors: (n_users, n_movies) float64 CSR.

    binary: 1 where rated (stars ignored). Each row is divided by (ratings of that user) **
    user_power and each column by (ratings of that movie) ** movie_power, so heavy raters and
    blockbusters do not dominate the leading singular vectors.
    """
    x = matrix.astype(np.float64).tocsr(copy=True)
    if binary:
        x.data[:] = 1.0
    activity = np.maximum(np.diff(x.indptr), 1).astype(np.float64)
    support = np.maximum(np.bincount(x.indices, minlength=x.shape[1]), 1).astype(np.float64)
    x = sparse.diags_array(activity**-user_power) @ x @ sparse.diags_array(support**-movie_power)
    return x.tocsr()


def movie_vectors(
    matrix: sparse.csr_array,
    dim: int,
    seed: int,
    binary: bool = True,
    user_power: float = 0.0,
    movie_power: float = 0.0,
    sv_power: float = 1.0,
) -> NDArray[np.float32]:
    """Unit-length movie vectors (n_movies, dim): right singular vectors scaled by s ** sv_power.

    Scaling by s keeps the strong taste axes dominant; unit norm makes the neighbour search
    cosine, so rarely rated movies (short vectors) do not crowd together near the origin.
    """
    x = svd_input(matrix, binary, user_power, movie_power)
    dim = min(dim, min(x.shape) - 1)
    _, s, vt = truncated_svd(x, dim, seed)
    return normalize_rows((vt * (s**sv_power)[:, None]).T)


def embed(ratings: Ratings, settings: Settings | int, seed: int = 0) -> Embeddings:
    """Movie vectors for every rated movie, by the recipe in `settings` (see `movie_vectors`).

    (`embed(ratings, dim, seed)` still works while the job moves to `embed(ratings, settings)`.)
    """
    if isinstance(settings, int):
        settings = Settings(dim=settings, seed=seed)
    started = time.perf_counter()
    vectors = movie_vectors(
        ratings.matrix, settings.dim, settings.seed, binary=settings.svd_binary,
        user_power=settings.svd_user_power, movie_power=settings.svd_movie_power,
        sv_power=settings.svd_sv_power,
    )
    log.info(
        "embedded %d movies in %d dimensions in %.2f s",
        len(ratings.movie_ids), vectors.shape[1], time.perf_counter() - started,
    )
    return Embeddings(vectors=vectors, movie_ids=ratings.movie_ids)
