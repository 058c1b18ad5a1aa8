"""SVD movie vectors and the co-watch re-rank on hand-made ratings with known structure."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from recs.embed import embed, movie_vectors
from recs.evaluate import recipe_lists
from recs.ingest import Ratings
from recs.rerank import co_counts, eligible, listed, watched_by
from recs.settings import Settings


def two_groups(seed: int = 0) -> Ratings:
    """40 users: 1-20 rate only movies 1-10, 21-40 only movies 101-110 (random stars)."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((40, 20), np.float32)
    for u in range(40):
        cols = np.arange(10) if u < 20 else np.arange(10, 20)
        seen = rng.choice(cols, size=rng.integers(5, 10), replace=False)
        dense[u, seen] = rng.integers(1, 11, size=len(seen)) / 2
    movie_ids = np.r_[np.arange(1, 11), np.arange(101, 111)].astype(np.int64)
    return Ratings(sparse.csr_array(dense), np.arange(1, 41, dtype=np.int64), movie_ids)


def test_neighbours_stay_inside_their_group():
    ratings = two_groups()
    lists = recipe_lists(ratings, Settings(dim=4, min_support=1, pool=9), k=5)
    assert len(lists.movie_ids) == 20
    for movie, row in zip(lists.movie_ids, lists.neighbor_ids, strict=True):
        assert (row >= 0).all()
        assert ((row > 100) == (movie > 100)).all(), (movie, row)


def test_vectors_are_deterministic_unit_length_and_separate_the_groups():
    ratings = two_groups()
    settings = Settings(dim=4)
    a, b = embed(ratings, settings), embed(ratings, settings)
    assert np.array_equal(a.vectors, b.vectors)
    assert np.array_equal(a.movie_ids, ratings.movie_ids)
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, rtol=1e-5)
    sims = a.vectors @ a.vectors.T
    inside, across = sims[:10, :10].mean(), sims[:10, 10:].mean()
    assert inside > 0.5 > abs(across)
    plain = movie_vectors(ratings.matrix, 4, 0, binary=False, user_power=0, movie_power=0)
    assert not np.allclose(plain, a.vectors)  # the recipe knobs change the vectors


def test_min_support_decides_who_gets_lists_and_who_appears():
    dense = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 1]], np.float32)
    ratings = Ratings(sparse.csr_array(dense), np.arange(3), np.array([5, 6, 7, 8]))
    settings = Settings(min_support=2)
    assert eligible(ratings, settings).tolist() == [True, True, False, False]
    assert np.array_equal(listed(ratings, settings), eligible(ratings, settings))


def test_co_counts_count_users_who_rated_both():
    dense = np.array([[5, 1, 0], [4, 0, 2], [3, 3, 3]], np.float32)
    x = watched_by(Ratings(sparse.csr_array(dense), np.arange(3), np.arange(3)))
    counts = co_counts(x, np.array([0, 1]), np.array([[1, 2], [0, -1]]))
    assert counts.tolist() == [[2, 2], [2, 0]]


def test_rerank_puts_the_most_co_watched_first_and_reports_co_watchers():
    # movie 0 is watched with 1 by three users and with 2 by one user; 3 is never co-watched
    dense = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]])
    ratings = Ratings(sparse.csr_array(dense.astype(np.float32)), np.arange(5),
                      np.array([10, 20, 30, 40]))
    from recs.neighbors import Neighbors
    from recs.rerank import rerank

    pools = Neighbors(np.array([10]), np.array([[30, 40, 20]]),
                      np.array([[0.9, 0.8, 0.5]], np.float32))
    out = rerank(ratings, pools, 3, Settings(rerank_pop_power=0.0))
    assert out.neighbor_ids.tolist() == [[20, 30, 40]]
    assert out.co_watchers.tolist() == [[3, 1, 0]]
    np.testing.assert_allclose(out.scores, [[1.5, 0.9, 0.0]], rtol=1e-6)
