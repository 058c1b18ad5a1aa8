"""Top-k engines on vectors whose neighbours are known, and exact == LanceDB on real data."""

from __future__ import annotations

import numpy as np
import pytest

from recs import neighbors as nb
from recs import store
from recs.embed import Embeddings, normalize_rows


def circle(n: int) -> Embeddings:
    """n unit vectors evenly spaced on a circle: each one's neighbours are its ring neighbours,
    and the two at equal angle on either side tie exactly."""
    angles = 2 * np.pi * np.arange(n) / n
    vectors = normalize_rows(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    return Embeddings(vectors=vectors, movie_ids=np.arange(100, 100 + n, dtype=np.int64))


def lists(emb, k, propose, eligible, batch_size=7):
    return nb.Neighbors.concat(list(nb.topk(emb, k, propose, eligible, batch_size)))


def test_ring_neighbours_with_ties_by_id():
    emb = circle(12)
    every = np.ones(12, bool)
    got = lists(emb, 4, nb.exact_proposer(emb, every, pool=6), every)
    # movie 100 sits between 101 and 111 (equal scores: lower id first), then 102 and 110
    assert got.neighbor_ids[0].tolist() == [101, 111, 102, 110]
    assert got.neighbor_ids[5].tolist() == [104, 106, 103, 107]
    assert np.all(np.diff(got.scores, axis=1) <= 0)
    assert not np.any(got.neighbor_ids == got.movie_ids[:, None])


def test_ineligible_movies_never_appear():
    emb = circle(12)
    eligible = np.ones(12, bool)
    eligible[1] = False
    got = lists(emb, 3, nb.exact_proposer(emb, eligible, pool=5), eligible)
    assert 101 not in got.neighbor_ids
    assert got.neighbor_ids[0].tolist() == [111, 102, 110]


def test_pool_smaller_than_a_tie_cluster_is_rescued():
    """Twenty identical vectors: any pool of 5 is arbitrary, the lists must still go by id."""
    vectors = normalize_rows(np.vstack([np.ones((20, 3)), [[1, -1, 0]], [[0, 0, 1]]]))
    emb = Embeddings(vectors=vectors, movie_ids=np.arange(1, 23, dtype=np.int64) * 10)
    every = np.ones(22, bool)
    got = lists(emb, 3, nb.exact_proposer(emb, every, pool=5), every)
    assert got.neighbor_ids[19].tolist() == [10, 20, 30]
    assert got.neighbor_ids[0].tolist() == [20, 30, 40]


def test_shards_in_any_order_give_the_same_lists():
    rng = np.random.default_rng(0)
    emb = Embeddings(normalize_rows(rng.normal(size=(200, 8))), np.arange(200, dtype=np.int64))
    every = np.ones(200, bool)
    propose = nb.exact_proposer(emb, every, pool=15)
    whole = lists(emb, 5, propose, every, batch_size=200)
    rows = rng.permutation(200)
    parts = [next(nb.topk(emb, 5, propose, every, 64, rows=rows[i : i + 64]))
             for i in range(0, 200, 64)]
    shuffled = nb.Neighbors.concat(parts[::-1])
    order = np.argsort(shuffled.movie_ids)
    assert np.array_equal(shuffled.neighbor_ids[order], whole.neighbor_ids)
    assert np.array_equal(shuffled.scores[order], whole.scores)


@pytest.fixture(scope="module")
def small_embeddings(ml_small):
    from recs.embed import embed
    from recs.ingest import read_dataset
    from recs.settings import Settings

    ratings, movies = read_dataset(ml_small)
    return embed(ratings, Settings(dim=32)), movies


def test_lancedb_and_exact_engines_agree_on_real_data(small_embeddings, tmp_path):
    emb, movies = small_embeddings
    every = np.ones(len(emb.movie_ids), bool)
    table = store.write_table(tmp_path, "t", store.content_table(emb, movies))
    rows = np.arange(0, len(emb.movie_ids), 3)  # a third of the catalog keeps this quick
    exact = next(nb.topk(emb, 10, nb.exact_proposer(emb, every, 20), every, len(rows), rows))
    lance = next(nb.topk(emb, 10, nb.lancedb_proposer(emb, every, 20, table), every,
                         len(rows), rows))
    assert np.array_equal(exact.neighbor_ids, lance.neighbor_ids)
    assert np.array_equal(exact.scores, lance.scores)
