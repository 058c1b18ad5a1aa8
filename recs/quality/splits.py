"""The splits every recipe is measured on: rating events in watch order, next-watch holdouts,
held-out users. Every protocol splits the events first and trains each recipe on its training
part only; no test event reaches a matrix a recipe sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from recs.core.sql import connect, load_sql
from recs.core.types import Neighbors, Ratings
from recs.stages.ingest import csr_with_times, load_tables


@dataclass(frozen=True)
class Events:
    """One row per (user, movie) pair, sorted by user, then time, then movie id.

    user_ids, movie_ids: (n,) int64; ratings: (n,) float32 stars; rated_at: (n,) int64 seconds.
    """

    user_ids: NDArray[np.int64]
    movie_ids: NDArray[np.int64]
    ratings: NDArray[np.float32]
    rated_at: NDArray[np.int64]

    def take(self, mask: NDArray[np.bool_]) -> Events:
        return Events(
            self.user_ids[mask], self.movie_ids[mask], self.ratings[mask], self.rated_at[mask]
        )

    def __len__(self) -> int:
        return len(self.user_ids)

def load_events(folder: Path, threads: int = 2) -> Events:
    """The deduplicated rating events of a MovieLens-latest folder, in watch order."""
    con = connect(threads)
    try:
        load_tables(con, Path(folder))
        cols = con.sql(load_sql("eval/events")).fetchnumpy()
    finally:
        con.close()
    return Events(
        user_ids=np.asarray(cols["user_id"], np.int64),
        movie_ids=np.asarray(cols["movie_id"], np.int64),
        ratings=np.asarray(cols["rating"], np.float32),
        rated_at=np.asarray(cols["rated_at"], np.int64),
    )

def events_matrix(events: Events) -> Ratings:
    """The users x movies star matrix of `events` (only users and movies that occur)."""
    user_ids, rows = np.unique(events.user_ids, return_inverse=True)
    movie_ids, cols = np.unique(events.movie_ids, return_inverse=True)
    matrix, rated_at = csr_with_times(
        rows, cols, events.ratings, events.rated_at, (len(user_ids), len(movie_ids))
    )
    return Ratings(matrix=matrix, user_ids=user_ids, movie_ids=movie_ids, rated_at=rated_at)

@dataclass(frozen=True)
class NextWatch:
    """Training events and the test pairs held out after them. users/queries/targets: (m,).

    tied: (m,) bool, the query and the target were rated in the same second, so which came
    first is an artefact of the tie-break (movie id); the "no-tie" metrics leave them out.
    """

    train: Events
    users: NDArray[np.int64]
    queries: NDArray[np.int64]
    targets: NDArray[np.int64]
    tied: NDArray[np.bool_] | None = None

def next_watch_split(events: Events, pairs: int = 3) -> NextWatch:
    """Hold out each user's last `pairs` consecutive (query, target) pairs.

    A user with n events gives min(pairs, n - 1) pairs; every target and everything after the
    first target leaves training (a query that is itself a later target also leaves).
    """
    n = len(events)
    starts = np.flatnonzero(np.r_[True, events.user_ids[1:] != events.user_ids[:-1]])
    ends = np.r_[starts[1:], n]
    per_user = np.minimum(pairs, ends - starts - 1)
    from_end = np.repeat(ends, ends - starts) - np.arange(n)  # 1 for a user's last event
    target = from_end <= np.repeat(per_user, ends - starts)
    idx = np.flatnonzero(target)
    return NextWatch(
        train=events.take(~target),
        users=events.user_ids[idx],
        queries=events.movie_ids[idx - 1],
        targets=events.movie_ids[idx],
        tied=events.rated_at[idx - 1] == events.rated_at[idx],
    )

def validation_split(train: Events, pairs: int = 3) -> NextWatch:
    """A next-watch split inside training events, for tuning without touching test events."""
    return next_watch_split(train, pairs)

def user_split(events: Events, seed: int, test_share: float = 0.2) -> tuple[Events, Events]:
    """(train, test) events with users split at random (seeded): no test user is in train."""
    users = np.unique(events.user_ids)
    rng = np.random.default_rng(seed)
    test_users = rng.permutation(users)[: int(round(len(users) * test_share))]
    is_test = np.isin(events.user_ids, test_users)
    return events.take(~is_test), events.take(is_test)


# A recipe trains on events and returns top-k lists for the movies it chooses to list.
Recipe = Callable[[Events, int, int], Neighbors]

@dataclass(frozen=True)
class Splits:
    """The splits every recipe is measured on, made once per dataset."""

    next_watch: NextWatch
    co_train: Events
    co_test: Events

def make_splits(events: Events, seed: int, pairs: int = 3) -> Splits:
    co_train, co_test = user_split(events, seed)
    return Splits(next_watch_split(events, pairs), co_train, co_test)
