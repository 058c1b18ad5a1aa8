"""The co-watch re-rank: counts, order, ties, and that the work order never changes lists."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from recs import rerank
from recs.embed import Embeddings, normalize_rows
from recs.ingest import Ratings
from recs.neighbors import Neighbors
from recs.ranking import tie_hash
from recs.settings import Settings


def ratings_of(pairs: list[tuple[int, int]], n_users: int, movie_ids: list[int]) -> Ratings:
    """(user row, movie column) pairs, every rating 4 stars."""
    users, cols = zip(*pairs, strict=True)
    m = sparse.csr_array((np.full(len(pairs), 4.0, np.float32), (users, cols)),
                         shape=(n_users, len(movie_ids)))
    return Ratings(matrix=m, user_ids=np.arange(n_users, dtype=np.int64) + 1,
                   movie_ids=np.array(movie_ids, np.int64))


def test_co_counts_count_users_who_rated_both():
    # users 0-2 rated movie 0; users 0-1 rated movie 1; user 2 rated movie 2; nobody movie 3
    r = ratings_of([(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 2)], 3, [5, 6, 7, 8])
    x = rerank.watched_by(r)
    got = rerank.co_counts(x, np.array([0, 1]), np.array([[1, 2, 3, -1], [0, 2, 3, -1]]))
    assert got.tolist() == [[2, 1, 0, 0], [2, 0, 0, 0]]


def test_score_is_cosine_times_co_watchers_over_popularity():
    # movie 10 (the query) is rated by users 0-3; movie 20 by users 0-1 (2 co-watchers, 2
    # ratings); movie 30 by users 0-3 and 4-7 (4 co-watchers, 8 ratings)
    pairs = [(u, 0) for u in range(4)] + [(u, 1) for u in range(2)] + [(u, 2) for u in range(8)]
    r = ratings_of(pairs, 8, [10, 20, 30])
    pools = Neighbors(np.array([10]), np.array([[20, 30]]), np.array([[0.9, 0.5]], np.float32))
    got = rerank.rerank(r, pools, 2, Settings(rerank_pop_power=1.0, rerank_cos_power=1.0))
    # 20: 0.9 * 2 / 2 = 0.9; 30: 0.5 * 4 / 8 = 0.25
    assert got.neighbor_ids.tolist() == [[20, 30]]
    assert np.allclose(got.scores, [[0.9, 0.25]])
    assert got.co_watchers.tolist() == [[2, 4]]
    assert got.cosine.tolist() == [[np.float32(0.9), 0.5]]


def test_equal_scores_go_by_cosine_then_pair_hash():
    # the query (col 0) and four candidates, each rated by the same single user as the query
    r = ratings_of([(0, c) for c in range(5)], 1, [1, 2, 3, 4, 5])
    cos = np.array([[0.5, 0.7, 0.5, 0.5]], np.float32)
    pools = Neighbors(np.array([1]), np.array([[2, 3, 4, 5]]), cos)
    got = rerank.rerank(r, pools, 4, Settings(rerank_pop_power=0.0))
    assert got.neighbor_ids[0, 0] == 3  # highest score (cosine 0.7)
    rest = np.array([2, 4, 5])
    expected = rest[np.argsort(tie_hash(np.array([1]), rest))]
    assert got.neighbor_ids[0, 1:].tolist() == expected.tolist()


def test_missing_candidates_stay_empty():
    r = ratings_of([(0, 0), (0, 1)], 1, [1, 2])
    pools = Neighbors(np.array([1]), np.array([[2, -1, -1]]), np.array([[0.3, -np.inf, -np.inf]],
                                                                       np.float32))
    got = rerank.rerank(r, pools, 3, Settings())
    assert got.neighbor_ids.tolist() == [[2, -1, -1]]
    assert got.co_watchers.tolist() == [[1, 0, 0]]
    assert np.all(np.isneginf(got.scores[0, 1:]))


def test_locality_order_is_a_permutation_that_groups_neighbours():
    rng = np.random.default_rng(0)
    centers = normalize_rows(rng.normal(size=(8, 4)))
    labels = rng.permutation(np.repeat(np.arange(8), 40))
    vectors = normalize_rows(centers[labels] + 0.01 * rng.normal(size=(320, 4)))
    order = rerank.locality_order(vectors, 40)
    assert np.array_equal(np.sort(order), np.arange(320))
    # every leaf of 40 holds few clusters (by id order it would hold about 8)
    assert max(len(set(labels[order[s : s + 40]])) for s in range(0, 320, 40)) <= 3


def test_the_order_hint_and_threads_do_not_change_the_lists():
    rng = np.random.default_rng(4)
    n_users, n_movies = 60, 700
    dense = rng.random((n_users, n_movies)) < 0.08
    dense[rng.integers(0, n_users, n_movies), np.arange(n_movies)] = True  # every movie rated
    users, cols = np.nonzero(dense)
    r = ratings_of(list(zip(users, cols, strict=True)), n_users, list(range(3, 3 + n_movies)))
    emb = Embeddings(normalize_rows(rng.normal(size=(n_movies, 5))), r.movie_ids)
    ids = rng.integers(0, n_movies, (n_movies, 30)) + 3
    ids[:, -3:] = -1
    cos = np.sort(rng.random((n_movies, 30)).astype(np.float32), axis=1)[:, ::-1].copy()
    cos[ids < 0] = -np.inf
    pools = Neighbors(r.movie_ids, ids, cos)
    plain = rerank.rerank(r, pools, 10, Settings())
    hinted = rerank.rerank(r, pools, 10, Settings(), emb, threads=2)
    for field in ("neighbor_ids", "scores", "cosine", "co_watchers"):
        assert np.array_equal(getattr(plain, field), getattr(hinted, field)), field


def test_bitsets_for_heavy_raters_count_the_same():
    rng = np.random.default_rng(7)
    n_users, n_movies = 150, 90
    dense = rng.random((n_users, n_movies)) < rng.random((n_users, 1)) * 0.6  # some heavy
    users, cols = np.nonzero(dense)
    r = ratings_of(list(zip(users, cols, strict=True)), n_users, list(range(n_movies)))
    rows = np.arange(n_movies)
    cands = rng.integers(-1, n_movies, (n_movies, 12))
    want = rerank.co_counts(rerank.watched_by(r), rows, cands)
    for heavy in (1, 20, 40, 10_000):  # every rater, some, none
        got = rerank.CoWatch.of(r, heavy).counts(rows, cands)
        assert np.array_equal(got, want), heavy
