"""Reference recipes the project's lists are measured against, all on the same training events.

random, most popular, item-kNN cosine on the star matrix, EASE (Steck 2019) with its L2 weight
tuned on a validation split inside training, the tutorial's recipe (dense pivot, full SVD,
raw right singular vectors, L2 distance), and close watchers alone (the re-rank's sequence
signal over the whole catalog, no SVD: what the SVD retrieval adds is measured against it).
Each is a `Recipe`: (train events, k, seed) -> lists for every movie in the training matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from threadpoolctl import threadpool_limits

from recs.core.ranking import top_dense
from recs.core.types import Neighbors, Ratings
from recs.quality.metrics import hit_ranks
from recs.quality.splits import Events, NextWatch, Recipe, events_matrix, validation_split
from recs.stages.embed import column_counts
from recs.stages.rerank import Timeline, watched_by

log = logging.getLogger(__name__)

EASE_LAMBDAS = (50.0, 150.0, 500.0, 1500.0, 5000.0)
BLOCK = 1024

# score rows for a block of query columns: (b,) -> (b, n_movies) float32
ScoreRows = Callable[[NDArray[np.int64]], NDArray[np.float32]]


def dense_lists(
    score_rows: ScoreRows,
    movie_ids: NDArray[np.int64],
    k: int,
    rows: NDArray[np.int64] | None = None,
    allowed: NDArray[np.bool_] | None = None,
) -> Neighbors:
    """Top-k lists from dense score rows, in blocks; never the query itself, only `allowed`."""
    n = len(movie_ids)
    rows = np.arange(n) if rows is None else rows
    ids, scores = [], []
    for start in range(0, len(rows), BLOCK):
        block = rows[start : start + BLOCK]
        s = np.asarray(score_rows(block), np.float32)
        s[np.arange(len(block)), block] = -np.inf
        if allowed is not None:
            s[:, ~allowed] = -np.inf
        i, sc = top_dense(s, movie_ids[block], movie_ids, k)
        ids.append(i)
        scores.append(sc)
    if not ids:
        return Neighbors(movie_ids[rows], np.empty((0, k), np.int64), np.empty((0, k), np.float32))
    return Neighbors(movie_ids[rows], np.concatenate(ids), np.concatenate(scores))


def random_recipe(train: Events, k: int, seed: int) -> Neighbors:
    """k movies drawn at random (seeded) for every movie."""
    r = events_matrix(train)
    rng = np.random.default_rng(seed)
    n = len(r.movie_ids)
    return dense_lists(lambda b: rng.random((len(b), n), dtype=np.float32), r.movie_ids, k)


def popular_recipe(train: Events, k: int, seed: int) -> Neighbors:
    """The k most rated movies (other than the query) for every movie."""
    r = events_matrix(train)
    counts = column_counts(r.matrix).astype(np.float32)
    return dense_lists(lambda b: np.tile(counts, (len(b), 1)), r.movie_ids, k)


def knn_rows(r: Ratings) -> ScoreRows:
    """Cosine similarity rows of the movies' star columns (users as dimensions)."""
    x = r.matrix.tocsc().astype(np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0))).ravel()
    xn = (x @ sparse.diags_array(1.0 / np.maximum(norms, 1e-12))).toarray().astype(np.float32)
    return lambda block: xn[:, block].T @ xn


def item_knn_recipe(train: Events, k: int, seed: int) -> Neighbors:
    """Cosine similarity of the movies' star columns (users as dimensions)."""
    r = events_matrix(train)
    rows = knn_rows(r)
    with threadpool_limits(limits=1, user_api="blas"):
        return dense_lists(rows, r.movie_ids, k)


# --- EASE -----------------------------------------------------------------------------------


def ease_rows(x: sparse.csr_array, lam: float) -> tuple[ScoreRows, NDArray[np.float64]]:
    """EASE item weights B = I - P diag(1/diag P), P = (X'X + lam I)^-1, X binary users x movies.

    Returns a function giving rows B[rows, :] (the weights from each query movie to every
    movie) and diag(P). With fewer users than movies P comes from the Woodbury identity
    P = (I - X' (X X' + lam I)^-1 X) / lam, so only a users x users system is solved.
    """
    n_users, n_movies = x.shape
    xd = x.astype(np.float64)
    if n_users < n_movies:
        xx = (xd @ xd.T).toarray()
        m = np.linalg.inv(xx + lam * np.eye(n_users))  # (u, u)
        xt = xd.T.tocsr()  # (n, u)
        xm = np.asarray(xt @ m)  # (n, u)
        diag = (1.0 - np.asarray(xd.multiply(xm.T).sum(axis=0)).ravel()) / lam

        def rows(block: NDArray[np.int64]) -> NDArray[np.float32]:
            p = -np.asarray(xd.T @ xm[block].T).T / lam  # (b, n): -X_b' M X / lam
            p[np.arange(len(block)), block] += 1.0 / lam
            return _b_from_p(p, block, diag)
    else:
        g = (xd.T @ xd).toarray() + lam * np.eye(n_movies)
        p_full = np.linalg.inv(g)
        diag = np.diag(p_full).copy()

        def rows(block: NDArray[np.int64]) -> NDArray[np.float32]:
            return _b_from_p(p_full[block].copy(), block, diag)

    return rows, diag


def _b_from_p(p: NDArray[np.float64], block: NDArray[np.int64], diag) -> NDArray[np.float32]:
    b = -p / diag[None, :]
    b[np.arange(len(block)), block] = 0.0
    return b.astype(np.float32)


def binary(events: Events):
    r = events_matrix(events)
    x = r.matrix.copy()
    x.data[:] = 1.0
    return r, x


def ease_validation(val: NextWatch, k: int, lambdas=EASE_LAMBDAS) -> list[tuple[float, float]]:
    """(lambda, next-watch HR@k on the validation events) for each of `lambdas`, EASE trained
    on val.train."""
    r, x = binary(val.train)
    qrows = np.flatnonzero(np.isin(r.movie_ids, val.queries))  # the queries' rows, ascending
    out = []
    for lam in lambdas:
        with threadpool_limits(limits=1, user_api="blas"):
            rows, _ = ease_rows(x, lam)
            lists = dense_lists(rows, r.movie_ids, k, rows=qrows)
        hr = float((hit_ranks(lists, val.queries, val.targets, k) >= 0).mean())
        log.info("EASE lambda %g: validation HR@%d %.4f", lam, k, hr)
        out.append((lam, hr))
    return out


def tune_ease(train: Events, k: int, lambdas=EASE_LAMBDAS) -> float:
    """The L2 weight with the best next-watch HR@k on a validation split inside `train` (the
    first listed of equals)."""
    return max(ease_validation(validation_split(train), k, lambdas), key=lambda p: p[1])[0]


def ease_recipe(train: Events, k: int, seed: int) -> Neighbors:
    """EASE on the binarised matrix; lambda tuned on a validation split of `train`."""
    lam = tune_ease(train, k)
    r, x = binary(train)
    with threadpool_limits(limits=1, user_api="blas"):
        rows, _ = ease_rows(x, lam)
        return dense_lists(rows, r.movie_ids, k)


def tutorial_recipe(train: Events, k: int, seed: int) -> Neighbors:
    """Dense pivot, full SVD, the raw right singular vectors, nearest by L2 distance."""
    r = events_matrix(train)
    dense = r.matrix.toarray().astype(np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        _, _, vt = np.linalg.svd(dense, full_matrices=False)
    v = vt.T.astype(np.float32)  # (n_movies, rank)
    sq = (v * v).sum(axis=1)
    with threadpool_limits(limits=1, user_api="blas"):
        return dense_lists(
            lambda b: -(sq[b, None] - 2.0 * (v[b] @ v.T) + sq[None, :]), r.movie_ids, k
        )


def close_watch_recipe(window: int, ties: str = "by_id") -> Recipe:
    """Every movie ranked by close watchers (users who rated both at most `window` ratings
    apart, `rerank.Timeline`, equal times `ties`), equal counts by co-watchers: no SVD, the
    whole catalog."""

    def recipe(train: Events, k: int, seed: int) -> Neighbors:
        r = events_matrix(train)
        timeline = Timeline.of(r, window, ties)
        x = watched_by(r)
        tiebreak = 1.0 / (x.shape[0] + 1.0)  # co-watchers < users + 1: only orders ties

        def rows(block: NDArray[np.int64]) -> NDArray[np.float32]:
            co = (x[:, block].T @ x).toarray()
            return (timeline.rows(block, window) + tiebreak * co).astype(np.float32)

        return dense_lists(rows, r.movie_ids, k)

    return recipe
