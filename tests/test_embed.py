"""SVD movie vectors, and the recipe's lists, on hand-made ratings with known structure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from threadpoolctl import threadpool_limits

from recs.core.errors import InputError
from recs.core.settings import Settings
from recs.core.types import Ratings
from recs.quality.evaluate import recipe_lists
from recs.stages.embed import BlockedProducts, embed, movie_vectors, svd_input, truncated_svd
from recs.stages.rerank import Counts, listed


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
    plain = movie_vectors(ratings.matrix, settings.model_copy(
        update={"svd_binary": False, "svd_user_power": 0.0, "svd_movie_power": 0.0}))
    assert not np.allclose(plain, a.vectors)  # the recipe knobs change the vectors


def test_min_support_decides_who_gets_lists_and_who_appears():
    dense = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 1]], np.float32)
    ratings = Ratings(sparse.csr_array(dense), np.arange(3), np.array([5, 6, 7, 8]))
    settings = Settings(min_support=2)
    # as recipe.prepare decides it, from the counts it builds
    assert listed(Counts.of(ratings, settings).support, settings).tolist() == [
        True, True, False, False]


# --- the SVD itself -------------------------------------------------------------------------

SOLVERS = [
    Settings(svd_solver="arpack"),
    Settings(svd_solver="randomized"),
    Settings(svd_solver="randomized", svd_oversample=0, svd_power_iters=2),  # Krylov blocks
]


def rank_two() -> sparse.csr_array:
    """7 x 6, two blocks of ones: 3 users x 4 movies of 2.0 and 4 users x 2 movies of 1.0.

    Singular values 2 sqrt(12) and sqrt(8); right singular vectors: the indicator of each
    block's movies, divided by its root length.
    """
    dense = np.zeros((7, 6), np.float32)
    dense[:3, :4] = 2.0
    dense[3:, 4:] = 1.0
    return sparse.csr_array(dense)


@pytest.mark.parametrize("settings", SOLVERS, ids=["arpack", "randomized", "krylov"])
def test_svd_of_a_rank_two_block_matrix_matches_the_dense_svd(settings):
    x = rank_two()
    s, vt = truncated_svd(x, 2, settings)
    np.testing.assert_allclose(s, [2 * np.sqrt(12), np.sqrt(8)], rtol=1e-6)
    expected = np.array([[0.5, 0.5, 0.5, 0.5, 0, 0], [0, 0, 0, 0, 1, 1] / np.sqrt(2)])
    np.testing.assert_allclose(vt, expected, atol=1e-6)  # signs fixed: largest entry positive
    _, s_np, vt_np = np.linalg.svd(x.toarray().astype(np.float64))
    np.testing.assert_allclose(s, s_np[:2], rtol=1e-6)
    np.testing.assert_allclose(np.abs(vt), np.abs(vt_np[:2]), atol=1e-6)


@pytest.mark.parametrize("settings", SOLVERS, ids=["arpack", "randomized", "krylov"])
def test_svd_finds_a_planted_low_rank_structure(settings):
    # 300 users x 200 movies: rank 6 with well separated singular values plus small noise
    rng = np.random.default_rng(1)
    u = np.linalg.qr(rng.normal(size=(300, 6)))[0]
    v = np.linalg.qr(rng.normal(size=(200, 6)))[0]
    dense = (u * [60, 50, 40, 30, 20, 10]) @ v.T + 0.01 * rng.normal(size=(300, 200))
    x = sparse.csr_array(dense.astype(np.float32))
    s, vt = truncated_svd(x, 6, settings)
    _, s_np, vt_np = np.linalg.svd(dense)
    np.testing.assert_allclose(s, s_np[:6], rtol=1e-4)
    np.testing.assert_allclose(np.abs((vt * vt_np[:6]).sum(axis=1)), 1.0, atol=1e-4)


def test_blocked_products_equal_the_plain_products_whatever_the_threads():
    rng = np.random.default_rng(2)
    x = sparse.random_array((50, 30), density=0.2, rng=rng, dtype=np.float32, format="csr")
    b, c = rng.normal(size=(30, 5)), rng.normal(size=(50, 5))
    one, two = BlockedProducts(x, 1), BlockedProducts(x, 2)
    assert len(one.blocks) == 4  # a fixed split, not one block per thread
    perm = np.empty(30, np.int64)
    perm[one.rank] = np.arange(30)  # product column j is x's column perm[j]
    dense = x.toarray()[:, perm]
    np.testing.assert_allclose(np.vstack(one.dot(b)), dense @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one.tdot(one.split(c)), dense.T @ c, rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.vstack(one.dot(b)), np.vstack(two.dot(b)))
    assert np.array_equal(one.tdot(one.split(c)), two.tdot(two.split(c)))


@pytest.mark.parametrize("solver", ["randomized", "arpack"])
def test_vectors_are_bit_identical_whatever_the_thread_counts(solver):
    rng = np.random.default_rng(3)
    matrix = sparse.random_array(
        (400, 120), density=0.1, rng=rng, dtype=np.float32, format="csr",
        data_sampler=lambda size: rng.integers(1, 11, size) / 2,
    )
    ratings = Ratings(matrix, np.arange(400), np.arange(120))
    runs = []
    for blas, threads in ((1, 1), (2, 2), (1, 2), (2, 1)):
        with threadpool_limits(limits=blas, user_api="blas"):
            settings = Settings(dim=16, svd_solver=solver, threads=threads)
            runs.append(embed(ratings, settings).vectors.tobytes())
    assert len(set(runs)) == 1


@pytest.mark.parametrize("solver", ["randomized", "arpack"])
def test_movies_of_two_disjoint_audiences_are_orthogonal(solver):
    a = embed(two_groups(), Settings(dim=4, svd_solver=solver)).vectors
    across = a[:10] @ a[10:].T
    assert np.abs(across).max() < 1e-4
    assert (a[:10] @ a[:10].T).mean() > 0.5


def test_svd_input_weights_users_and_movies_without_touching_the_ratings():
    dense = np.array([[5, 0, 1], [4, 2, 0], [0, 0, 3], [1, 1, 1]], np.float32)
    matrix = sparse.csr_array(dense)
    before = matrix.data.copy()
    x = svd_input(matrix, binary=True, user_power=0.5, movie_power=0.25)
    users = (dense > 0).sum(axis=1, keepdims=True)
    movies = (dense > 0).sum(axis=0, keepdims=True)
    expected = (dense > 0) / users**0.5 / movies**0.25
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.toarray(), expected, rtol=1e-6)
    stars = svd_input(matrix, binary=False, user_power=0.0, movie_power=1.0)
    np.testing.assert_allclose(stars.toarray(), dense / movies, rtol=1e-6)
    assert np.array_equal(matrix.data, before)
    assert np.shares_memory(x.indices, matrix.indices)  # only the values are new


def test_a_dimension_the_matrix_cannot_hold_is_an_input_error():
    ratings = Ratings(rank_two(), np.arange(7), np.arange(6))
    with pytest.raises(InputError, match="--dim 5 or less"):
        embed(ratings, Settings(dim=6))
    assert embed(ratings, Settings(dim=5)).vectors.shape == (6, 5)
