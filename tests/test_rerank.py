"""The co-watch re-rank: counts, order, ties, and that the work order never changes lists."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import write_dataset
from scipy import sparse

from recs.core.ranking import tie_hash
from recs.core.settings import Settings
from recs.core.types import Embeddings, Neighbors, Ratings
from recs.jobs import nightly
from recs.stages import rerank
from recs.stages.embed import normalize_rows


def ratings_of(pairs: list[tuple[int, int]], n_users: int, movie_ids: list[int]) -> Ratings:
    """(user row, movie column) pairs, every rating 4 stars."""
    users, cols = zip(*pairs, strict=True)
    m = sparse.csr_array((np.full(len(pairs), 4.0, np.float32), (users, cols)),
                         shape=(n_users, len(movie_ids)))
    return Ratings(matrix=m, user_ids=np.arange(n_users, dtype=np.int64) + 1,
                   movie_ids=np.array(movie_ids, np.int64))


def rerank_of(r: Ratings, pools: Neighbors, k: int, settings: Settings, *args, **kwargs):
    """`rerank.rerank` with the counts of `r` built for `settings`."""
    return rerank.rerank(rerank.Counts.of(r, settings), pools, k, settings, *args, **kwargs)


def test_co_counts_count_users_who_rated_both():
    # users 0-2 rated movie 0; users 0-1 rated movie 1; user 2 rated movie 2; nobody movie 3
    r = ratings_of([(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 2)], 3, [5, 6, 7, 8])
    x = rerank.watched_by(r)
    got = rerank.co_counts(x, np.array([0, 1]), np.array([[1, 2, 3, -1], [0, 2, 3, -1]]))
    assert got.tolist() == [[2, 1, 0, 0], [2, 0, 0, 0]]


def test_co_counts_count_any_star_as_watched():
    # one-star and five-star ratings alike make a user a watcher
    dense = np.array([[5, 1, 0], [4, 0, 2], [3, 3, 3]], np.float32)
    x = rerank.watched_by(Ratings(sparse.csr_array(dense), np.arange(3), np.arange(3)))
    counts = rerank.co_counts(x, np.array([0, 1]), np.array([[1, 2], [0, -1]]))
    assert counts.tolist() == [[2, 2], [2, 0]]


def test_rerank_puts_the_most_co_watched_first_and_reports_co_watchers():
    # movie 0 is watched with 1 by three users and with 2 by one user; 3 is never co-watched
    dense = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]])
    ratings = Ratings(sparse.csr_array(dense.astype(np.float32)), np.arange(5),
                      np.array([10, 20, 30, 40]))
    pools = Neighbors(np.array([10]), np.array([[30, 40, 20]]),
                      np.array([[0.9, 0.8, 0.5]], np.float32))
    settings = Settings(rerank_pop_power=0.0, rerank_cos_power=1.0)
    out = rerank_of(ratings, pools, 3, settings)
    assert out.neighbor_ids.tolist() == [[20, 30, 40]]
    assert out.co_watchers.tolist() == [[3, 1, 0]]
    np.testing.assert_allclose(out.scores, [[1.5, 0.9, 0.0]], rtol=1e-6)


def test_score_is_cosine_times_co_watchers_over_popularity():
    # movie 10 (the query) is rated by users 0-3; movie 20 by users 0-1 (2 co-watchers, 2
    # ratings); movie 30 by users 0-3 and 4-7 (4 co-watchers, 8 ratings)
    pairs = [(u, 0) for u in range(4)] + [(u, 1) for u in range(2)] + [(u, 2) for u in range(8)]
    r = ratings_of(pairs, 8, [10, 20, 30])
    pools = Neighbors(np.array([10]), np.array([[20, 30]]), np.array([[0.9, 0.5]], np.float32))
    got = rerank_of(r, pools, 2, Settings(rerank_pop_power=1.0, rerank_cos_power=1.0))
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
    got = rerank_of(r, pools, 4, Settings(rerank_pop_power=0.0))
    assert got.neighbor_ids[0, 0] == 3  # highest score (cosine 0.7)
    rest = np.array([2, 4, 5])
    expected = rest[np.argsort(tie_hash(np.array([1]), rest))]
    assert got.neighbor_ids[0, 1:].tolist() == expected.tolist()


def test_missing_candidates_stay_empty():
    r = ratings_of([(0, 0), (0, 1)], 1, [1, 2])
    pools = Neighbors(np.array([1]), np.array([[2, -1, -1]]), np.array([[0.3, -np.inf, -np.inf]],
                                                                       np.float32))
    got = rerank_of(r, pools, 3, Settings())
    assert got.neighbor_ids.tolist() == [[2, -1, -1]]
    assert got.co_watchers.tolist() == [[1, 0, 0]]
    assert np.all(np.isneginf(got.scores[0, 1:]))


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
    plain = rerank_of(r, pools, 10, Settings())
    hinted = rerank_of(r, pools, 10, Settings(), emb, threads=2)
    for field in ("neighbor_ids", "scores", "cosine", "co_watchers"):
        assert np.array_equal(getattr(plain, field), getattr(hinted, field)), field


@pytest.mark.parametrize("lookups", [1 << 22, 7])  # one chunk of pairs, or many
def test_co_watch_counts_every_pair_as_the_sparse_product_does(lookups, monkeypatch):
    monkeypatch.setattr(rerank, "_LOOKUPS", lookups)
    rng = np.random.default_rng(7)
    n_users, n_movies = 150, 90  # more movies than one group of marked hubs
    dense = rng.random((n_users, n_movies)) < rng.random((n_users, 1)) * 0.6  # some heavy
    dense[:, 5] = dense[:, 6]  # two movies with the same raters: equal support
    users, cols = np.nonzero(dense)
    r = ratings_of(list(zip(users, cols, strict=True)), n_users, list(range(n_movies)))
    rows = np.arange(n_movies)
    cands = rng.integers(-1, n_movies, (n_movies, 12))
    cands[5, 0], cands[6, 0] = 6, 5  # one pair asked in both orders
    cands[7, 1] = 7  # a movie with itself: all its raters
    want = rerank.co_counts(rerank.watched_by(r), rows, cands)
    watch = rerank.CoWatch.of(r)
    for threads in (1, 2, 3):
        got, close = watch.counts(rows, cands, 0, threads)
        assert got.dtype == close.dtype == np.int32
        assert np.array_equal(got, want), threads
        assert not close.any()  # no rating times: no close watchers
    assert got[7, 1] == dense[:, 7].sum() and got[5, 0] == got[6, 0] == dense[:, 5].sum()
    assert [a.shape for a in watch.counts(rows[:0], cands[:0])] == [(0, 12), (0, 12)]


# --- close watchers: who rated both within a few ratings of each other ------------------------


def timed_ratings(histories: list[list[tuple[int, int]]], n_movies: int) -> Ratings:
    """One (movie column, time) list per user, every rating 4 stars; movie ids 100 + column."""
    users = [u for u, h in enumerate(histories) for _ in h]
    cols = [c for h in histories for c, _ in h]
    times = [t for h in histories for _, t in h]
    from recs.stages.ingest import csr_with_times

    m, rated_at = csr_with_times(np.array(users), np.array(cols), np.full(len(cols), 4.0),
                                 np.array(times), (len(histories), n_movies))
    return Ratings(m, np.arange(len(histories), dtype=np.int64),
                   np.arange(n_movies, dtype=np.int64) + 100, rated_at)


def brute_close(histories: list[list[tuple[int, int]]], q: int, c: int, window: int) -> int:
    """Users whose history (sorted by time, then column) has q and c at most window apart."""
    n = 0
    for h in histories:
        order = [col for col, _ in sorted(h, key=lambda ct: (ct[1], ct[0]))]
        if q in order and c in order and abs(order.index(q) - order.index(c)) <= window:
            n += 1
    return n


def test_close_watchers_follow_each_users_time_order():
    # user 0 watched 3, 0, 1, 2 (times 10..40); user 1 watched 0 then 2; user 2 watched 2 and
    # 0 in one second (ties go by movie id: 0 then 2), then 1 much later
    histories = [[(0, 20), (1, 30), (2, 40), (3, 10)], [(0, 5), (2, 6)], [(2, 7), (0, 7), (1, 99)]]
    tl = rerank.Timeline.of(timed_ratings(histories, 4), pad=2)
    rows = np.array([0, 0, 3])
    cands = np.array([[1, 2, 3], [2, -1, 1], [0, 1, 2]])
    # window 1: 0-1 adjacent for users 0 (0,1) and none else (user 2: 0,2,1 -> 0-1 are 2 apart)
    # 0-2: user 1 (0,2), user 2 (0,2); 0-3: user 0 (3,0); 3-0 likewise; 3-1, 3-2: never
    assert tl.counts(rows, cands, 1).tolist() == [[1, 2, 1], [2, 0, 1], [1, 0, 0]]
    # window 2: user 0's 0-2 (0,1,2) and 3-1 (3,0,1) and user 2's 0-1 join
    assert tl.counts(rows, cands, 2).tolist() == [[2, 3, 1], [3, 0, 2], [1, 1, 0]]


def test_close_watchers_never_span_two_users():
    # user 0's last rating is movie 1, user 1's first is movie 2: adjacent in the file only
    histories = [[(0, 1), (1, 2)], [(2, 3), (3, 4)]]
    tl = rerank.Timeline.of(timed_ratings(histories, 4), pad=3)
    assert tl.counts(np.array([1, 2]), np.array([[2, 0], [1, 3]]), 3).tolist() == [[0, 1], [0, 1]]


def random_histories(rng, users: int, movies: int, most: int, times: int):
    """Per user, up to `most` distinct movies (< `movies`), each at a time in [0, times)."""
    histories = []
    for _ in range(users):
        seen = rng.choice(movies, size=rng.integers(1, most), replace=False)
        histories.append([(int(c), int(t)) for c, t in zip(seen, rng.integers(0, times, len(seen)),
                                                           strict=True)])
    return histories


def test_close_watchers_equal_a_brute_force_count():
    rng = np.random.default_rng(11)
    histories = random_histories(rng, users=40, movies=30, most=20, times=8)
    tl = rerank.Timeline.of(timed_ratings(histories, 30), pad=4)
    rows = np.arange(30)
    cands = rng.integers(-1, 30, (30, 9))
    cands[cands == rows[:, None]] = -1
    for window in (1, 2, 4):
        want = [[brute_close(histories, q, c, window) if c >= 0 else 0 for c in row]
                for q, row in zip(rows, cands, strict=True)]
        assert tl.counts(rows, cands, window).tolist() == want, window


@pytest.mark.parametrize("ties", ["by_id", "unordered"])
@pytest.mark.parametrize("lookups", [1 << 22, 5])  # one chunk of pairs, or many
def test_co_watch_counts_close_watchers_as_the_timeline_does(ties, lookups, monkeypatch):
    monkeypatch.setattr(rerank, "_LOOKUPS", lookups)
    rng = np.random.default_rng(13)
    histories = random_histories(rng, users=60, movies=40, most=30, times=9)
    r = timed_ratings(histories, 40)
    rows = np.arange(40)
    cands = rng.integers(-1, 40, (40, 11))
    cands[3, 2] = 3  # a movie is never close to itself
    watch = rerank.CoWatch.of(r, ties)
    co_want = rerank.co_counts(rerank.watched_by(r), rows, cands)
    for window in (1, 2, 5):
        want = rerank.Timeline.of(r, window, ties).counts(rows, cands, window)
        for threads in (1, 2):
            co, close = watch.counts(rows, cands, window, threads)
            assert np.array_equal(close, want), (window, threads)
            assert np.array_equal(co, co_want)
    brute = brute_close if ties == "by_id" else brute_close_groups
    assert close[0, 0] == (brute(histories, 0, cands[0, 0], 5) if cands[0, 0] >= 0 else 0)
    assert close[3, 2] == 0 and co[3, 2] == len([h for h in histories if 3 in dict(h)])


def test_close_watchers_weigh_in_the_score():
    # the query 100 and candidates 101, 102, each co-watched by the same two users; user 0 rated
    # 101 right after the query, 102 much later; user 1 rated 101, 102, 104, then the query
    histories = [[(0, 1), (1, 2), (3, 3), (4, 4), (5, 5), (2, 6)],
                 [(1, 1), (2, 2), (4, 3), (0, 4)]]
    r = timed_ratings(histories, 6)
    pools = Neighbors(np.array([100]), np.array([[102, 101]]),
                      np.array([[0.64, 0.36]], np.float32))
    s = Settings(rerank_pop_power=0.0, rerank_cos_power=0.5, close_window=1, close_weight=3.0,
                 next_weight=0.0, next_pool=0)
    got = rerank_of(r, pools, 2, s)
    # 101: sqrt(0.36) * (2 + 3 * 1) = 3.0; 102: sqrt(0.64) * (2 + 3 * 0) = 1.6
    assert got.neighbor_ids.tolist() == [[101, 102]]
    assert got.close_watchers.tolist() == [[1, 0]] and got.co_watchers.tolist() == [[2, 2]]
    np.testing.assert_allclose(got.scores, [[3.0, 1.6]], rtol=1e-6)
    off = rerank_of(r, pools, 2, s.model_copy(update={"close_weight": 0.0}))
    assert off.neighbor_ids.tolist() == [[102, 101]] and off.close_watchers.tolist() == [[0, 0]]


def test_without_rating_times_close_watchers_are_zero():
    r = ratings_of([(0, 0), (0, 1), (1, 0), (1, 1)], 2, [1, 2])
    pools = Neighbors(np.array([1]), np.array([[2]]), np.array([[0.5]], np.float32))
    got = rerank_of(r, pools, 1, Settings())
    assert got.co_watchers.tolist() == [[2]] and got.close_watchers.tolist() == [[0]]


def test_a_window_wider_than_the_padding_is_refused():
    tl = rerank.Timeline.of(timed_ratings([[(0, 1), (1, 2)], [(1, 1)]], 2), pad=1)
    with pytest.raises(ValueError, match="exceeds the timeline's padding"):
        tl.counts(np.array([0]), np.array([[1]]), 2)


def test_close_watchers_with_times_spanning_more_than_2_to_the_32_seconds():
    # such a span takes the lexsort path of the watch order instead of one packed key
    histories = [[(0, -10**12), (2, 10**12), (1, 0)], [(1, 5), (0, 5), (2, 2**40)]]
    tl = rerank.Timeline.of(timed_ratings(histories, 3), pad=1)
    rows, cands = np.array([0, 1, 2]), np.array([[1, 2], [0, 2], [0, 1]])
    want = [[brute_close(histories, q, c, 1) for c in row]
            for q, row in zip(rows, cands, strict=True)]
    assert tl.counts(rows, cands, 1).tolist() == want == [[2, 0], [2, 2], [0, 2]]


# --- close watchers with equal rating times unordered (close_ties="unordered") ---------------


def group_gaps(histories: list[list[tuple[int, int]]], q: int, c: int) -> list[int]:
    """Per user who rated both, how many tie groups (distinct times) c comes after q."""
    gaps = []
    for h in histories:
        when = dict(h)
        if q in when and c in when:
            times = sorted(set(when.values()))
            gaps.append(times.index(when[c]) - times.index(when[q]))
    return gaps


def brute_close_groups(histories: list[list[tuple[int, int]]], q: int, c: int, window: int) -> int:
    """Users whose distinct rating times put q and c at most window tie groups apart."""
    return sum(abs(gap) <= window for gap in group_gaps(histories, q, c))


def test_unordered_ties_count_tie_groups_equal_to_a_brute_force_count():
    rng = np.random.default_rng(12)
    histories = []
    for _ in range(40):
        movies = rng.choice(30, size=rng.integers(1, 20), replace=False)
        histories.append([(int(c), int(t)) for c, t in zip(movies, rng.integers(0, 6, len(movies)),
                                                           strict=True)])
    tl = rerank.Timeline.of(timed_ratings(histories, 30), pad=4, ties="unordered")
    rows = np.arange(30)
    cands = rng.integers(-1, 30, (30, 9))
    cands[cands == rows[:, None]] = -1
    for window in (1, 2, 4):
        want = [[brute_close_groups(histories, q, c, window) if c >= 0 else 0 for c in row]
                for q, row in zip(rows, cands, strict=True)]
        assert tl.counts(rows, cands, window).tolist() == want, window
        dense = tl.rows(rows, window)
        assert all(dense[i, c] == want[i][j] for i in range(30) for j, c in enumerate(cands[i])
                   if c >= 0)


def test_unordered_ties_put_one_second_at_distance_zero_and_never_span_users():
    # user 0 rated 0, 1, 2, 3 in one second, then 4; user 1 rated 5 then 6 (next user: apart)
    histories = [[(0, 5), (1, 5), (2, 5), (3, 5), (4, 9)], [(5, 1), (6, 2)]]
    tl = rerank.Timeline.of(timed_ratings(histories, 7), pad=1, ties="unordered")
    got = tl.counts(np.array([0, 4, 4]), np.array([[3, 4], [0, 5], [3, -1]]), 1)
    assert got.tolist() == [[1, 1], [1, 0], [1, 0]]
    by_id = rerank.Timeline.of(timed_ratings(histories, 7), pad=1)
    assert by_id.counts(np.array([0, 4]), np.array([[3, 4], [0, 5]]), 1).tolist() == [
        [0, 0], [0, 0]]


def test_unordered_ties_do_not_depend_on_movie_ids_unlike_by_id():
    # relabel the movies (reverse the columns): with ties unordered every count is the same
    # for the same pair of movies; ordered by id, the counts of tied ratings change
    rng = np.random.default_rng(5)
    histories = [[(int(c), int(t)) for c, t in zip(rng.choice(12, 8, replace=False),
                                                  rng.integers(0, 3, 8), strict=True)]
                 for _ in range(30)]
    flipped = [[(11 - c, t) for c, t in h] for h in histories]
    rows = np.arange(12)
    back = 11 - rows
    for ties, same in (("unordered", True), ("by_id", False)):
        a = rerank.Timeline.of(timed_ratings(histories, 12), pad=2, ties=ties).rows(rows, 2)
        b = rerank.Timeline.of(timed_ratings(flipped, 12), pad=2, ties=ties).rows(back, 2)
        assert np.array_equal(a, b[:, back]) == same, ties


def test_unknown_ties_setting_is_refused():
    with pytest.raises(ValueError, match="ties must be"):
        rerank.Timeline.of(timed_ratings([[(0, 1), (1, 1)]], 2), pad=1, ties="random")


# --- next watchers: who rated the candidate within a few ratings after the query ------------


def next_rows(tl: rerank.Timeline, rows: np.ndarray, window: int, n_movies: int) -> list:
    """`Timeline.after` as dense (len(rows), n_movies) lists."""
    keys, counts = tl.after(rows, window)
    assert np.all(keys[1:] > keys[:-1])
    dense = np.zeros(len(rows) * n_movies, np.int64)
    dense[keys] = counts
    return dense.reshape(len(rows), n_movies).tolist()


def brute_next_groups(histories: list[list[tuple[int, int]]], q: int, c: int, window: int) -> int:
    """Users who rated c 1 to `window` tie groups (distinct times) after q."""
    return sum(1 <= gap <= window for gap in group_gaps(histories, q, c))


def test_next_watchers_count_only_strictly_later_tie_groups():
    # user 0 rated 0, then 1 and 2 in one second, then 3; user 1 rated 2, then 0 and 3 in one
    # second, then 1; user 2 rated 0 and 1 in one second (unordered: neither came next)
    histories = [[(0, 1), (1, 2), (2, 2), (3, 3)], [(2, 1), (0, 2), (3, 2), (1, 3)],
                 [(0, 5), (1, 5)]]
    tl = rerank.Timeline.of(timed_ratings(histories, 4), pad=2, ties="unordered")
    rows = np.array([0, 2, 3])
    # after 0 within 1 group: 1 (users 0 and 1), 2 (user 0), 3 never (user 1: tied with 0)
    # after 2: 0 and 3 (user 1), 3 (user 0); after 3: 1 (user 1), 0 never
    assert next_rows(tl, rows, 1, 4) == [[0, 2, 1, 0], [1, 0, 0, 2], [0, 1, 0, 0]]
    # within 2 groups: user 0's 3 comes 2 groups after 0, and user 1's 1 two after 2
    assert next_rows(tl, rows, 2, 4) == [[0, 2, 1, 1], [1, 1, 0, 2], [0, 1, 0, 0]]


@pytest.mark.parametrize("small_keys", [1 << 32, 1])  # uint32 keys, or int64 ones
def test_next_watchers_equal_a_brute_force_count_and_ignore_tie_order(small_keys, monkeypatch):
    monkeypatch.setattr(rerank, "_SMALL_KEYS", small_keys)
    rng = np.random.default_rng(13)
    histories = random_histories(rng, users=40, movies=30, most=20, times=6)
    flipped = [[(29 - c, t) for c, t in h] for h in histories]  # reverses every tie's id order
    tl = rerank.Timeline.of(timed_ratings(histories, 30), pad=4, ties="unordered")
    back = rerank.Timeline.of(timed_ratings(flipped, 30), pad=4, ties="unordered")
    rows = np.arange(30)
    assert tl.after(rows, 1)[0].dtype == (np.uint32 if small_keys > 1 else np.int64)
    for window in (1, 2, 4):
        want = [[brute_next_groups(histories, q, c, window) for c in range(30)] for q in rows]
        assert next_rows(tl, rows, window, 30) == want, window
        flipped_rows = np.array(next_rows(back, 29 - rows, window, 30))
        assert flipped_rows[:, 29 - rows].tolist() == want, window


def test_next_watchers_with_ties_by_id_look_only_forward():
    histories = [[(0, 1), (1, 2), (2, 3)], [(2, 1), (1, 1), (0, 1)]]  # user 1: ties, by id 0, 1, 2
    tl = rerank.Timeline.of(timed_ratings(histories, 3), pad=2)
    assert next_rows(tl, np.array([0, 2]), 1, 3) == [[0, 2, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="padding"):
        tl.after(np.array([0]), 3)


def test_next_pool_adds_the_most_next_watched_movies_outside_the_pool():
    # after 100: 102 by three users, 103 by two, 101 by one (already in the pool), 104 by one
    # user but it has too few ratings to be listed (min_support 2)
    histories = [[(0, 1), (2, 2)], [(0, 1), (2, 2), (3, 3)], [(0, 1), (3, 2), (2, 3)],
                 [(0, 1), (1, 2), (4, 3)], [(1, 1), (2, 1), (3, 1)]]
    r = timed_ratings(histories, 5)
    vectors = normalize_rows(np.array([[1, 0], [1, 1], [0, 1], [1, 2], [1, 0]], np.float32))
    emb = Embeddings(vectors, r.movie_ids)
    pools = Neighbors(np.array([100]), np.array([[101, -1]]), np.array([[0.7071, -1]], np.float32))
    s = Settings(rerank_pop_power=0.0, rerank_cos_power=1.0, close_weight=0.0, next_window=2,
                 next_weight=2.0, next_pool=2, min_support=2)
    got = rerank_of(r, pools, 4, s, emb)
    # 103: cos 0.447 * (2 + 2 * 2); 101: 0.707 * (1 + 2 * 1); 102: cos 0 -> score 0
    assert got.neighbor_ids.tolist() == [[103, 101, 102, -1]]
    assert got.co_watchers.tolist() == [[2, 1, 3, 0]]
    assert got.next_watchers.tolist() == [[2, 1, 3, 0]]
    np.testing.assert_allclose(got.cosine[0, :3], [1 / np.sqrt(5), 0.7071, 0.0], atol=1e-4)
    np.testing.assert_allclose(got.scores[0, :3], [6 / np.sqrt(5), 3 * 0.7071, 0.0], atol=1e-4)
    alone = rerank_of(r, pools, 4, s.model_copy(update={"next_pool": 0}), emb)
    assert alone.neighbor_ids.tolist() == [[101, -1, -1, -1]]
    with pytest.raises(ValueError, match="needs their embeddings"):
        rerank_of(r, pools, 4, s)


@pytest.mark.parametrize("small_keys", [1 << 32, 1])  # uint32 keys, or int64 ones
def test_next_pool_lists_do_not_depend_on_blocks_or_threads(small_keys, monkeypatch):
    monkeypatch.setattr(rerank, "_SMALL_KEYS", small_keys)
    rng = np.random.default_rng(17)
    histories = random_histories(rng, users=80, movies=120, most=40, times=30)
    r = timed_ratings(histories, 120)
    emb = Embeddings(normalize_rows(rng.normal(size=(120, 4))), r.movie_ids)
    ids = np.stack([rng.permutation(120)[:12] for _ in range(120)]) + r.movie_ids[0]
    ids[ids == r.movie_ids[:, None]] = -1  # never the query itself
    pools = Neighbors(r.movie_ids, ids, np.where(ids >= 0, 0.5, -np.inf).astype(np.float32))
    s = Settings(next_pool=5, next_window=2, min_support=2)
    whole = rerank_of(r, pools, 10, s, emb, threads=1)
    monkeypatch.setattr(rerank, "BLOCK", 7)
    for threads in (1, 2):
        parts = rerank_of(r, pools, 10, s, emb, threads=threads)
        for field in ("neighbor_ids", "scores", "cosine", "co_watchers", "next_watchers"):
            assert np.array_equal(getattr(whole, field), getattr(parts, field)), field
    col = {int(m): i for i, m in enumerate(r.movie_ids)}
    added = [set(row) - set(pool) - {-1} for row, pool in zip(whole.neighbor_ids, ids, strict=True)]
    assert any(added)  # some listed movies came from the next-watched extension
    for q, row, nexts in zip(whole.movie_ids, whole.neighbor_ids, whole.next_watchers,
                             strict=True):
        for c, got in zip(row, nexts, strict=True):
            if c >= 0:
                assert got == brute_next_groups(histories, col[int(q)], col[int(c)], 2)


# --- the whole job: published lists do not depend on how equal times are ordered ------------


def tied_ratings() -> list[tuple[int, int, float, int]]:
    """20 users rate 5-9 of movies 10-19 in bursts of 1-3 ratings with one time each, sorted
    by (user, time, movie id): the order a tie-break by id would give."""
    rng = np.random.default_rng(3)
    rows = []
    for user in range(1, 21):
        movies = rng.permutation(np.arange(10, 20))[: rng.integers(5, 10)]
        t, i = 1_500_000_000 + 10_000 * user, 0
        while i < len(movies):
            burst = int(rng.integers(1, 4))
            rows += [(user, int(m), float(rng.integers(1, 6)), t) for m in movies[i : i + burst]]
            i, t = i + burst, t + 60
    return sorted(rows, key=lambda r: (r[0], r[3], r[1]))


def published(rows, tmp_path, name: str, ties: str = "unordered") -> list[dict]:
    data = write_dataset(tmp_path / name / "data", rows)
    settings = Settings(data=str(data), out=tmp_path / name / "out", db=tmp_path / name / "db",
                        dim=2, top_k=9, close_window=1, close_weight=3.0, close_ties=ties)
    table = pq.read_table(nightly.run(settings).run_dir / "recommendations.parquet")
    return table.to_pylist()


@pytest.mark.slow
def test_published_lists_do_not_change_when_equal_time_ratings_are_shuffled_or_resorted(
    tmp_path,
):
    rows = tied_ratings()
    assert sum(a[0] == b[0] and a[3] == b[3] for a, b in itertools.pairwise(rows)) > 20
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    resorted = sorted(rows, key=lambda r: (r[0], r[3], -r[1]))  # ties by descending id
    reference = published(rows, tmp_path, "sorted")
    assert any(r["close_watchers"] for r in reference)
    assert published(shuffled, tmp_path, "shuffled") == reference
    assert published(resorted, tmp_path, "resorted") == reference


@pytest.mark.slow
def test_published_close_watchers_do_not_depend_on_movie_ids_when_ties_are_unordered(tmp_path):
    # rename movie m to 29 - m: the id order inside every tie group reverses. Unordered, each
    # published pair keeps its close watchers under the new names; ordered by id, some change
    rows = tied_ratings()
    renamed = [(u, 29 - m, r, t) for u, m, r, t in rows]
    for ties, same in (("unordered", True), ("by_id", False)):
        a = {(r["movie_id"], r["neighbor_id"]): r["close_watchers"]
             for r in published(rows, tmp_path, f"a-{ties}", ties)}
        b = {(29 - r["movie_id"], 29 - r["neighbor_id"]): r["close_watchers"]
             for r in published(renamed, tmp_path, f"b-{ties}", ties)}
        assert len(a) == len(b) == 90  # every pair of the 10 movies is published
        assert (a == b) == same, ties


def test_best_k_orders_the_best_k_as_a_full_order_would():
    from recs.core.ranking import order_rows

    rng = np.random.default_rng(21)
    b, m = 300, 40
    query_ids = rng.integers(0, 10**6, b)
    cand_ids = rng.integers(0, 10**6, (b, m))
    score = rng.integers(0, 6, (b, m)).astype(np.float64)  # many ties, some across the k-th
    cos = rng.integers(0, 3, (b, m)).astype(np.float64)
    score[:20, 5:] = -np.inf  # rows with fewer than k finite scores
    score[20:40] = rng.random((20, m))  # no ties at all
    for k in (1, 10, 39, 40, 60):
        want = order_rows(query_ids, cand_ids, score, cos)[:, :k]
        assert np.array_equal(rerank.best_k(query_ids, cand_ids, score, cos, k), want), k


@pytest.mark.parametrize("table", [1 << 24, 1])  # by a table, or by binary search
def test_columns_of_maps_ids_to_matrix_columns(table, monkeypatch):
    monkeypatch.setattr(rerank, "_ID_TABLE", table)
    movie_ids = np.array([3, 8, 9, 40_000])
    ids = np.array([[40_000, 3, -1], [9, 8, 3]])
    assert rerank.columns_of(movie_ids, ids).tolist() == [[3, 0, 0], [2, 1, 0]]


def test_row_blocks_cover_every_row_in_order_within_the_cap():
    weights = np.array([5, 1, 1, 9, 2, 2, 2, 30, 1], np.int64)
    blocks = rerank.row_blocks(weights, 6)
    assert [(b.start, b.stop) for b in blocks] == [(0, 2), (2, 3), (3, 4), (4, 7), (7, 8), (8, 9)]
    for b in blocks:  # within the cap, or a single row
        assert weights[b].sum() <= 6 or b.stop - b.start == 1
    assert rerank.row_blocks(np.ones(600, np.int64), 10**9)[0] == slice(0, rerank.BLOCK)
    assert rerank.row_blocks(np.zeros(0, np.int64), 6) == []
