"""Top-k engines on vectors whose neighbours are known, exact == LanceDB on real data, and the
approximate IVF engine's recall against exact."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import run_tiny

from recs.core.types import Embeddings
from recs.stages import neighbors as nb
from recs.stages import store
from recs.stages.embed import normalize_rows


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
    from recs.core.settings import Settings
    from recs.stages.embed import embed
    from recs.stages.ingest import read_dataset

    ratings, movies = read_dataset(ml_small)
    return embed(ratings, Settings(dim=32)), movies


@pytest.mark.slow
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


def reference_scores(vectors, rows, cands):
    """The original definition: float64 products summed over the last axis, cast."""
    q = vectors[rows].astype(np.float64)[:, None, :]
    c = vectors[cands].astype(np.float64)
    scores = (q * c).sum(axis=-1).astype(np.float32)
    scores[cands < 0] = -np.inf
    return scores


@pytest.mark.parametrize("dim", [3, 8, 64])
def test_pair_scores_are_bit_identical_to_the_plain_float64_sum(dim):
    rng = np.random.default_rng(dim)
    vectors = normalize_rows(rng.normal(size=(500, dim)))
    rows = rng.integers(0, 500, 300)
    cands = rng.integers(-1, 500, (300, 40))
    got = nb.pair_scores(vectors, rows, cands)
    assert got.tobytes() == reference_scores(vectors, rows, cands).tobytes()


def test_rank_orders_by_score_then_id_and_pads_short_rows():
    ids = np.arange(10, 70, 10, dtype=np.int64)  # movie ids of rows 0..5
    cands = np.array([[3, 1, 4, 2, -1], [5, 0, -1, -1, -1]])
    scores = np.array([[0.5, 0.9, 0.5, -0.0, -np.inf], [0.0, 0.0, -np.inf, -np.inf, -np.inf]],
                      np.float32)
    top, sc = nb.rank(ids, cands, scores, 4)
    assert top.tolist() == [[1, 3, 4, 2], [0, 5, -1, -1]]  # -0.0 ties 0.0: lower id first
    assert sc[0].tolist() == [np.float32(0.9), 0.5, 0.5, 0.0]
    assert sc[1, 2:].tolist() == [-np.inf, -np.inf]


def test_lower_bound_never_exceeds_the_mth_largest():
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(50, 2000)).astype(np.float32)
    sims[:, rng.integers(0, 2000, 300)] = -np.inf
    sims[:5, :40] = 1.0  # a tie cluster in one group of columns
    for m in (1, 7, 100):
        kth = np.sort(sims, axis=1)[:, -m]
        assert np.all(nb._lower_bound(sims, m) <= kth)


def test_exact_engine_proves_every_row_even_in_tie_clusters():
    """Clusters of identical vectors straddle the pool edge; the exact engine must still
    hand `finish` pools that need no full re-scoring, with the lists a full scan gives."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(30, 6))
    vectors = normalize_rows(np.repeat(base, rng.integers(1, 12, 30), axis=0))
    n = len(vectors)
    emb = Embeddings(vectors=vectors, movie_ids=np.arange(n, dtype=np.int64) * 3 + 1)
    every = np.ones(n, bool)
    rows = np.arange(n)
    cands, floor = nb.exact_proposer(emb, every, 10)(rows)
    top, scores, rescored = nb.finish(emb, rows, cands, floor, every, 10)
    assert rescored == 0
    # reference: score everything with the plain definition, order by score then id
    full = np.tile(np.arange(n), (n, 1))
    ref_scores = reference_scores(vectors, rows, full)
    ref_scores[rows, rows] = -np.inf
    order = np.lexsort((np.tile(np.arange(n), n), -ref_scores.ravel(), np.repeat(rows, n)))
    ref = (order.reshape(n, n) % n)[:, :10]
    assert np.array_equal(top, ref)
    assert np.array_equal(scores, np.take_along_axis(ref_scores, ref, 1))


def test_threads_and_batch_sizes_give_the_same_lists():
    rng = np.random.default_rng(2)
    emb = Embeddings(normalize_rows(rng.normal(size=(300, 8))), np.arange(300, dtype=np.int64))
    every = np.ones(300, bool)
    every[::7] = False
    propose = nb.exact_proposer(emb, every, 12)
    one = nb.Neighbors.concat(list(nb.topk(emb, 12, propose, every, 300, threads=1)))
    two = nb.Neighbors.concat(list(nb.topk(emb, 12, propose, every, 37, threads=2)))
    assert np.array_equal(one.neighbor_ids, two.neighbor_ids)
    assert np.array_equal(one.scores, two.scores)
    assert not np.isin(one.neighbor_ids, emb.movie_ids[~every]).any()


def test_short_pools_are_padded_with_minus_one():
    emb = circle(5)
    every = np.ones(5, bool)
    got = lists(emb, 6, nb.exact_proposer(emb, every, 6), every)
    assert np.all(got.neighbor_ids[:, 4:] == -1)
    assert np.all(got.scores[:, 4:] == -np.inf)


def clustered(n: int, dim: int, clusters: int, seed: int) -> Embeddings:
    """n unit vectors around `clusters` random centres, with noise 1.5x a centre's scale: the
    clusters overlap, so an index that probes too few partitions misses neighbours (half of
    IVF_PROBE_SHARE already drops recall@10 below 0.95 here)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(0, clusters, n)] + 1.5 * rng.normal(size=(n, dim))
    return Embeddings(normalize_rows(vectors), np.arange(n, dtype=np.int64) * 2 + 1)


def test_ivf_recall_at_10_against_exact_on_clustered_vectors():
    emb = clustered(6000, 16, 60, seed=4)
    eligible = np.ones(6000, bool)
    eligible[::11] = False
    rows = np.flatnonzero(eligible)
    exact = next(nb.topk(emb, 10, nb.exact_proposer(emb, eligible, 10), eligible, len(rows),
                         rows))
    with nb.proposer(emb, eligible, 10, "ivf") as propose:
        assert np.all(propose(rows[:4])[1] == -np.inf)  # the index answered: nothing proven
        ivf = next(nb.topk(emb, 10, propose, eligible, len(rows), rows))
    hits = [len(set(a) & set(b)) for a, b in zip(ivf.neighbor_ids, exact.neighbor_ids,
                                                   strict=True)]
    assert sum(hits) / exact.neighbor_ids.size >= 0.95
    assert not np.isin(ivf.neighbor_ids, emb.movie_ids[~eligible]).any()
    assert not np.any(ivf.neighbor_ids == ivf.movie_ids[:, None])
    assert np.all(np.diff(ivf.scores, axis=1) <= 0)


def test_ivf_on_a_small_catalog_gives_the_exact_lists():
    emb = clustered(400, 8, 10, seed=5)
    every = np.ones(400, bool)
    exact = lists(emb, 10, nb.exact_proposer(emb, every, 10), every)
    with nb.proposer(emb, every, 10, "ivf") as propose:
        assert np.array_equal(lists(emb, 10, propose, every).neighbor_ids, exact.neighbor_ids)


@pytest.mark.slow
def test_job_runs_end_to_end_with_the_ivf_engine(make_dataset, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(nb, "IVF_MIN_MOVIES", 0)  # the tiny set through the index itself
    caplog.set_level("INFO", logger=nb.__name__)
    result = run_tiny(make_dataset(), tmp_path, engine="ivf")
    assert "ivf: 3 partitions over 10 movies" in caplog.text
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["settings"]["engine"] == "ivf"
    lists_ = store_lists(result.run_dir)
    assert sorted(lists_) == [10, 11, 12, 13, 14, 20, 21, 22, 23, 24]
    for movie, nbrs in lists_.items():  # two groups, orthogonal: no list crosses over
        group = range(10, 15) if movie < 20 else range(20, 25)
        assert len(nbrs) == 3 and movie not in nbrs and set(nbrs) <= set(group), (movie, nbrs)


def store_lists(run_dir) -> dict[int, list[int]]:
    """Each movie's published neighbour ids, in rank order."""
    out: dict[int, list[int]] = {}
    for row in pq.read_table(run_dir / "recommendations.parquet").to_pylist():
        out.setdefault(row["movie_id"], []).append(row["neighbor_id"])
    return out
