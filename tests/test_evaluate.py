"""Evaluation protocols, baselines and the quality gate on tiny hand-made data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from recs.core.ranking import top_dense
from recs.core.settings import Settings
from recs.core.types import Neighbors
from recs.quality.baselines import dense_lists, ease_rows
from recs.quality.evaluate import evaluate
from recs.quality.metrics import (
    catalog_health,
    co_liked_recall,
    hit_ranks,
    next_watch_scores,
    quality,
)
from recs.quality.splits import Events, events_matrix, load_events, next_watch_split, user_split


def events(rows: list[tuple[int, int, float, int]]) -> Events:
    rows = sorted(rows, key=lambda r: (r[0], r[3], r[1]))
    u, m, r, t = (np.array(c) for c in zip(*rows, strict=True))
    return Events(u.astype(np.int64), m.astype(np.int64), r.astype(np.float32), t.astype(np.int64))


def lists(table: dict[int, list[int]], k: int = 3) -> Neighbors:
    ids = sorted(table)
    nb = np.array([table[i] + [-1] * (k - len(table[i])) for i in ids], np.int64)
    return Neighbors(np.array(ids, np.int64), nb, np.zeros(nb.shape, np.float32))


def test_next_watch_split_holds_out_last_pairs_and_never_trains_on_targets():
    ev = events([(1, m, 4.0, t) for t, m in enumerate([10, 11, 12, 13, 14])]
                + [(2, 20, 3.0, 5), (2, 21, 3.0, 5), (2, 19, 3.0, 1)])
    split = next_watch_split(ev, pairs=2)
    # user 1: pairs (12 -> 13), (13 -> 14); user 2 orders equal times by id: 19, 20, 21
    assert split.queries.tolist() == [12, 13, 19, 20]
    assert split.targets.tolist() == [13, 14, 20, 21]
    trained = set(zip(split.train.user_ids.tolist(), split.train.movie_ids.tolist(), strict=True))
    for u, t in zip(split.users.tolist(), split.targets.tolist(), strict=True):
        assert (u, t) not in trained
    assert trained == {(1, 10), (1, 11), (1, 12), (2, 19)}


def test_user_split_is_disjoint_and_seeded():
    ev = events([(u, m, 4.0, m) for u in range(1, 21) for m in range(3)])
    train, test = user_split(ev, seed=7)
    assert not set(train.user_ids) & set(test.user_ids)
    assert len(np.unique(test.user_ids)) == 4
    again = user_split(ev, seed=7)[1]
    assert np.array_equal(test.user_ids, again.user_ids)


def test_hit_rate_is_one_when_every_target_is_listed_and_zero_when_none():
    ev = events([(1, 1, 4, 0), (1, 2, 4, 1), (1, 3, 4, 2), (2, 1, 4, 0), (2, 3, 4, 1)])
    split = next_watch_split(ev, pairs=1)  # (2 -> 3) and (1 -> 3)
    all_in = lists({1: [3, 2], 2: [3, 1], 3: [1, 2]})
    scores = next_watch_scores(all_in, split, k=3, seed=0)
    assert scores["hr"] == 1.0 and scores["ndcg"] == 1.0
    second = lists({1: [2, 3], 2: [1, 3], 3: [1, 2]})
    assert next_watch_scores(second, split, 3, 0)["ndcg"] == pytest.approx(1 / np.log2(3))
    none_in = lists({1: [2], 2: [1], 3: [1, 2]})
    assert next_watch_scores(none_in, split, 3, 0)["hr"] == 0.0
    assert hit_ranks(lists({9: [3]}), split.queries, split.targets, 3).tolist() == [-1, -1]


def test_co_liked_recall_and_coverage_known_values():
    test = events([(5, 1, 5.0, 0), (5, 2, 4.0, 1), (5, 3, 4.5, 2), (5, 4, 1.0, 3)])
    perfect = lists({1: [2, 3], 2: [1, 3], 3: [1, 2]})
    assert co_liked_recall(perfect, test, k=3) == 1.0
    half = lists({1: [2, 4], 2: [4, 9], 3: [1, 2]})  # 1/2, 0/2, 2/2
    assert co_liked_recall(half, test, k=3) == pytest.approx(0.5)
    train = events_matrix(events([(1, m, 4.0, m) for m in (1, 2, 3, 4)] + [(2, 1, 4.0, 9)]))
    health = catalog_health(lists({1: [2], 2: [1], 3: [1], 4: [1]}), train, np.array([1]), 3)
    assert health["coverage"] == 0.5 and health["pop_targets"] == 2.0
    assert health["pop_recommended"] == pytest.approx((2 + 1 + 2 + 2) / 4)


def test_ease_woodbury_rows_equal_a_direct_inverse():
    rng = np.random.default_rng(3)
    x = sparse.csr_array((rng.random((6, 9)) < 0.4).astype(np.float64))  # fewer users than movies
    lam = 2.5
    p = np.linalg.inv(x.toarray().T @ x.toarray() + lam * np.eye(9))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    rows, diag = ease_rows(x, lam)
    np.testing.assert_allclose(rows(np.arange(9)), b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diag, np.diag(p), rtol=1e-10)
    tall = sparse.csr_array(np.vstack([x.toarray()] * 2))  # more users than movies: direct
    p2 = np.linalg.inv(tall.toarray().T @ tall.toarray() + lam * np.eye(9))
    np.testing.assert_allclose(ease_rows(tall, lam)[0](np.array([4]))[0, 0], -p2[4, 0] / p2[0, 0],
                               rtol=1e-5)


def test_ties_are_broken_by_a_fixed_hash_not_always_toward_the_same_movies():
    scores = np.zeros((50, 40), np.float32)
    ids, _ = top_dense(scores, np.arange(50, dtype=np.int64), np.arange(40, dtype=np.int64), 3)
    again, _ = top_dense(scores, np.arange(50, dtype=np.int64), np.arange(40, dtype=np.int64), 3)
    assert np.array_equal(ids, again)
    assert len(np.unique(ids)) > 20  # id order would give {0, 1, 2} to every row
    best = dense_lists(lambda b: np.tile(np.arange(5, dtype=np.float32), (len(b), 1)),
                       np.arange(5, dtype=np.int64) * 10, 2)
    assert best.neighbor_ids[4].tolist() == [30, 20]  # never the query itself


def write_folder(folder: Path, rows: list[tuple[int, int, float, int]]) -> Path:
    folder.mkdir()
    movies = sorted({m for _, m, _, _ in rows})
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in rows)
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n" + "".join(f"{m},Movie {m} (2000),Drama\n" for m in movies)
    )
    (folder / "links.csv").write_text(
        "movieId,imdbId,tmdbId\n" + "".join(f"{m},{m:07d},{m}\n" for m in movies)
    )
    return folder


def two_groups(seed: int = 0) -> list[tuple[int, int, float, int]]:
    """Users 1-30 watch movies 1-12 and users 31-60 watch 101-112, in a random order each."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, 61):
        pool = np.arange(1, 13) if u <= 30 else np.arange(101, 113)
        for t, m in enumerate(rng.permutation(pool)[: rng.integers(7, 12)]):
            rows.append((u, int(m), float(rng.integers(1, 6)), 1000 * u + t))
    return rows


def test_load_events_dedups_and_orders_by_time_then_id(tmp_path):
    folder = write_folder(tmp_path / "d", [(1, 5, 3.0, 20), (1, 2, 4.0, 20), (1, 5, 1.0, 30),
                                           (1, 9, 2.0, 10)])
    ev = load_events(folder)
    assert ev.movie_ids.tolist() == [9, 2, 5]
    assert ev.ratings.tolist() == [2.0, 4.0, 1.0]  # the latest rating of a pair rated twice


@pytest.mark.slow
def test_evaluate_is_reproducible_and_beats_random_on_clear_structure(tmp_path):
    folder = write_folder(tmp_path / "d", two_groups())
    settings = Settings(dim=4, min_support=2, pool=20)
    first = evaluate(folder, settings, k=5, seed=1)
    second = evaluate(folder, settings, k=5, seed=1)
    strip = lambda r: {n: {m: v for m, v in row.items() if m != "seconds"}  # noqa: E731
                       for n, row in r["rows"].items()}
    assert strip(first) == strip(second)
    rows = first["rows"]
    assert rows["recs (configured)"]["hr"] > rows["random"]["hr"]
    assert rows["recs (configured)"]["co_liked_recall"] > rows["random"]["co_liked_recall"] + 0.1


def test_quality_gate_measures_given_lists(tmp_path):
    folder = write_folder(tmp_path / "d", two_groups())
    ev = load_events(folder)
    split = next_watch_split(ev, pairs=1)
    perfect = {}
    for q, t in zip(split.queries.tolist(), split.targets.tolist(), strict=True):
        perfect.setdefault(q, set()).add(t)
    ids = sorted(perfect)
    width = max(len(v) for v in perfect.values())
    nb = np.array([sorted(perfect[i]) + [-1] * (width - len(perfect[i])) for i in ids])
    good = Neighbors(np.array(ids), nb, np.zeros(nb.shape, np.float32))
    pairs = split.queries, split.targets
    assert quality(*pairs, good, k=width)["hr"] == 1.0
    empty = Neighbors(np.array(ids), np.full(nb.shape, -1), np.zeros(nb.shape, np.float32))
    result = quality(*pairs, empty, k=width)
    assert result["hr"] == 0.0 and result["coverage"] == 0.0


def test_close_watch_baseline_ranks_by_close_watchers_then_co_watchers():
    from recs.quality.baselines import close_watch_recipe

    # users 1-3 watch 10, 20, 50, 60, 30 in that order; user 4 watches 10 then 40
    rows = [(u, m, 4.0, t) for u in (1, 2, 3) for t, m in enumerate((10, 20, 50, 60, 30))]
    rows += [(4, 10, 4.0, 0), (4, 40, 4.0, 1)]
    got = close_watch_recipe(1)(events(rows), 3, 0)
    row = got.neighbor_ids[list(got.movie_ids).index(10)]
    # close (window 1) to 10: 20 by three users, 40 by one; 50, 60, 30 by none (co-watched by 3)
    assert row[:2].tolist() == [20, 40] and row[2] in (30, 50, 60)


# --- scoring a given list file ------------------------------------------------------------


def write_lists(path: Path, rows: list[tuple[int, int, int]]) -> Path:
    """A Parquet list file of (movie_id, rank, neighbor_id) rows, in the order given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    movie, rank, nbr = zip(*rows, strict=True)
    pq.write_table(pa.table({"movie_id": pa.array(movie, pa.int64()),
                             "rank": pa.array(rank, pa.int16()),
                             "neighbor_id": pa.array(nbr, pa.int64())}), path)
    return path


def test_read_lists_orders_by_rank_and_cuts_at_k(tmp_path):
    from recs.quality.evaluate import read_lists

    path = write_lists(tmp_path / "l.parquet", [(7, 3, 30), (2, 1, 9), (7, 1, 10), (7, 2, 20),
                                                 (2, 5, 8)])  # rank 5 right after rank 1
    got = read_lists(path, k=2)
    assert got.movie_ids.tolist() == [2, 7]
    assert got.neighbor_ids.tolist() == [[9, 8], [10, 20]]


def test_a_list_file_is_scored_reproducibly_on_the_next_watch_split(tmp_path):
    from recs.quality.evaluate import evaluate_lists

    folder = write_folder(tmp_path / "d", two_groups())
    split = next_watch_split(load_events(folder), pairs=3)
    wanted: dict[int, list[int]] = {}
    for q, t in zip(split.queries.tolist(), split.targets.tolist(), strict=True):
        targets = wanted.setdefault(q, [])
        if t not in targets:
            targets.append(t)
    rows = [(q, r, t) for q, ts in wanted.items() for r, t in enumerate(ts, 1)]
    every = write_lists(tmp_path / "every.parquet", rows)
    first = evaluate_lists(folder, every, k=10, seed=3)
    second = evaluate_lists(folder, every, k=10, seed=3)
    row = first["rows"]["every.parquet"]
    assert row["hr"] == 1.0 and row["events"] == len(split.targets)
    same = lambda r: {m: v for m, v in r["rows"]["every.parquet"].items()  # noqa: E731
                      if m not in ("seconds", "co_liked_recall")}
    assert same(first) == same(second)
    wrong = write_lists(tmp_path / "wrong.parquet", [(q, 1, q) for q in wanted])  # itself
    assert evaluate_lists(folder, wrong, k=10)["rows"]["wrong.parquet"]["hr"] == 0.0


def test_a_list_file_without_the_columns_is_refused_by_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recs.core.errors import InputError
    from recs.quality.evaluate import read_lists

    path = tmp_path / "movies.parquet"
    pq.write_table(pa.table({"movie_id": [1], "neighbor_id": [2]}), path)
    with pytest.raises(InputError, match=r"movies\.parquet: needs an integer column 'rank'"):
        read_lists(path, 10)
    with pytest.raises(InputError, match="not found"):
        read_lists(tmp_path / "missing.parquet", 10)


def test_no_tie_scores_leave_out_events_whose_query_and_target_share_a_time():
    # user 1: 1 (t0) -> 2 (t1): untied; user 2: 1 and 3 in one second: tied (order by id)
    ev = events([(1, 1, 4, 0), (1, 2, 4, 1), (2, 1, 4, 5), (2, 3, 4, 5)])
    split = next_watch_split(ev, pairs=1)
    assert split.tied.tolist() == [False, True]
    only_tied_hit = lists({1: [3]})
    scores = next_watch_scores(only_tied_hit, split, k=3, seed=0)
    assert scores["hr"] == 0.5 and scores["events"] == 2
    assert scores["hr_nt"] == 0.0 and scores["ndcg_nt"] == 0.0 and scores["events_nt"] == 1
    assert scores["hr_nt_lo"] == scores["hr_nt_hi"] == 0.0
    untied_hit = next_watch_scores(lists({1: [2]}), split, 3, 0)
    assert untied_hit["hr_nt"] == 1.0 and untied_hit["ndcg_nt"] == 1.0


def test_no_tie_scores_are_nan_without_untied_events():
    ev = events([(1, 1, 4, 0), (1, 2, 4, 0)])
    scores = next_watch_scores(lists({1: [2]}), next_watch_split(ev, pairs=1), 3, 0)
    assert scores["hr"] == 1.0 and np.isnan(scores["hr_nt"]) and scores["events_nt"] == 0
