"""The sequence-aware baselines (recs/quality/sequential.py) on tiny hand-made histories."""

from __future__ import annotations

import numpy as np
import pytest

from recs.core.types import Ratings
from recs.quality import sequential
from recs.quality.splits import Events, events_matrix


def events(rows: list[tuple[int, int, int]]) -> Events:
    """(user, movie, time) rows, 4 stars, in watch order (ties by movie id)."""
    rows = sorted(rows, key=lambda r: (r[0], r[2], r[1]))
    u, m, t = (np.array(c, np.int64) for c in zip(*rows, strict=True))
    return Events(u, m, np.full(len(u), 4.0, np.float32), t)


def dense(events_: Events, window: int, directed: bool) -> tuple[np.ndarray, Ratings]:
    r = events_matrix(events_)
    return sequential.rule_matrix(events_, r, window, directed).toarray(), r


# user 1 rated A=1, then B=2 and C=3 in one second, then D=4; user 2 rated D then A
HISTORY = [(1, 1, 10), (1, 2, 20), (1, 3, 20), (1, 4, 30), (2, 4, 5), (2, 1, 6)]


def test_tie_groups_start_at_each_user_and_each_new_time():
    assert sequential.tie_groups(events(HISTORY)).tolist() == [0, 1, 1, 2, 3, 4]


def test_sequential_rules_weigh_one_over_the_distance_in_tie_groups():
    s, _ = dense(events(HISTORY), 1, directed=True)
    a, b, c, d = 0, 1, 2, 3  # columns of movies 1-4
    want = np.zeros((4, 4))
    want[a, b] = want[a, c] = 1  # A then {B, C}
    want[b, c] = want[c, b] = 1  # one second: both directions, as distance 1
    want[b, d] = want[c, d] = 1  # {B, C} then D
    want[d, a] = 1  # user 2: D then A
    np.testing.assert_allclose(s, want)
    s2, _ = dense(events(HISTORY), 2, directed=True)
    assert s2[a, d] == pytest.approx(0.5) and s2[d, a] == 1  # A to D: two groups on
    markov = sequential.rule_matrix(events(HISTORY), events_matrix(events(HISTORY)), 1, True)
    np.testing.assert_allclose(markov.toarray(), want)


def test_sequential_rules_either_way_are_symmetric_and_never_span_users():
    s, _ = dense(events(HISTORY), 2, directed=False)
    np.testing.assert_allclose(s, s.T)
    # user 1's D (last) and user 2's D (first) are next to each other only in the file
    lone = events([(1, 1, 1), (1, 2, 2), (2, 3, 1), (2, 4, 2)])
    s, _ = dense(lone, 20, directed=False)
    assert s[1, 2] == 0 and s[0, 1] == 1 and s[2, 3] == 1


def test_sequential_rules_do_not_depend_on_how_ties_are_broken():
    # rename the movies so the id order inside the tie group reverses: same scores by movie
    rng = np.random.default_rng(4)
    rows = [(u, int(m), int(t)) for u in range(1, 15)
            for m, t in zip(rng.choice(9, 6, replace=False), rng.integers(0, 3, 6), strict=True)]
    s, _ = dense(events(rows), 2, directed=True)
    flipped, _ = dense(events([(u, 8 - m, t) for u, m, t in rows]), 2, directed=True)
    np.testing.assert_allclose(s, flipped[::-1, ::-1])


def test_short_rows_are_filled_by_popularity_below_every_rule():
    ev = events(HISTORY + [(3, 4, 1), (4, 4, 1)])  # movie 4 is the most rated
    r = events_matrix(ev)
    rows = sequential.with_fallback(
        sequential.rule_matrix(ev, r, 1, True), np.array([2, 1, 1, 4]))(np.array([1]))
    assert rows[0, 2] == 1.0 and rows[0, 3] == 1.0  # B's rules: C (tie) and D
    assert -1 < rows[0, 0] < 0  # A only by popularity


def test_sentences_shuffle_each_tie_group_with_the_seed_only():
    ev = events([(1, m, 10) for m in range(1, 9)] + [(1, 20, 5), (2, 9, 1)])
    one = sequential.sentences(ev, seed=3)
    assert one == sequential.sentences(ev, seed=3)
    assert one[0][0] == "20" and sorted(one[0][1:]) == [str(m) for m in range(1, 9)]
    assert one[1] == ["9"]
    assert any(sequential.sentences(ev, seed=s)[0] != one[0] for s in range(4, 8))


def test_row_max_blend_weighs_normalised_rows():
    seq = lambda block: np.array([[2.0, 1.0, 0.0]], np.float32)  # noqa: E731
    other = lambda block: np.array([[0.0, 10.0, 5.0]], np.float32)  # noqa: E731
    model = sequential.blend(lambda t, r: seq, lambda t, r: other, 0.25)
    got = model(None, None)(np.array([0]))
    np.testing.assert_allclose(got, [[0.25, 0.25 * 0.5 + 0.75, 0.75 * 0.5]], rtol=1e-6)


@pytest.mark.skipif(not sequential.has_gensim(), reason="gensim (the eval extra) is missing")
def test_item2vec_is_deterministic_with_one_worker_and_a_seed():
    rng = np.random.default_rng(0)
    rows = [(u, int(m), int(t)) for u in range(1, 30)
            for t, m in enumerate(rng.choice(12, 8, replace=False))]
    ev = events(rows)
    r = events_matrix(ev)
    model = sequential.item2vec(8, 2, 2, seed=1)
    a = model(ev, r)(np.arange(12))
    b = model(ev, r)(np.arange(12))
    assert np.array_equal(a, b)
    np.testing.assert_allclose(np.diag(a), 1.0, rtol=1e-5)
