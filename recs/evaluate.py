"""Measured recommendation quality: next-watch, co-liked on held-out users, catalog health.

Every protocol splits the rating events first and trains each recipe on its training part only;
no test event reaches a matrix a recipe sees. Lists are item-to-item ("because you watched X"),
the same lists the job publishes: they are not personalised and do not hide watched movies.

Protocols (k = 10 by default):
- next-watch: each user's events in time order (equal times by movie id); the last `pairs`
  consecutive pairs are test events (query = earlier movie, target = the next one); training
  keeps everything before the first target. HR@k and NDCG@k over events, with a 95% bootstrap
  interval that resamples users.
- co-liked: users split 80/20; for each held-out user's liked movie (rating >= 4), recall@k of
  its list against the user's other liked movies.
- catalog: coverage@k (share of movies with lists that appear in some list), and the mean
  training popularity of recommended movies next to that of the next-watch targets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from recs.embed import column_counts
from recs.errors import InputError
from recs.ingest import Ratings, connect, csr_with_times, load_tables
from recs.neighbors import Neighbors
from recs.settings import Settings
from recs.sqlfiles import load_sql

log = logging.getLogger(__name__)

LIKED = 4.0
BOOTSTRAP = 1000


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
        cols = con.sql(load_sql("eval_events")).fetchnumpy()
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


# --- splits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NextWatch:
    """Training events and the test pairs held out after them. users/queries/targets: (m,)."""

    train: Events
    users: NDArray[np.int64]
    queries: NDArray[np.int64]
    targets: NDArray[np.int64]


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
    )


def user_split(events: Events, seed: int, test_share: float = 0.2) -> tuple[Events, Events]:
    """(train, test) events with users split at random (seeded): no test user is in train."""
    users = np.unique(events.user_ids)
    rng = np.random.default_rng(seed)
    test_users = rng.permutation(users)[: int(round(len(users) * test_share))]
    is_test = np.isin(events.user_ids, test_users)
    return events.take(~is_test), events.take(is_test)


# --- metrics --------------------------------------------------------------------------------


def list_rows(lists: Neighbors, movie_ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """Row of each movie's list in `lists` (whose movie_ids are ascending), -1 if it has none."""
    if len(lists.movie_ids) == 0:
        return np.full(len(movie_ids), -1, np.int64)
    pos = np.minimum(np.searchsorted(lists.movie_ids, movie_ids), len(lists.movie_ids) - 1)
    return np.where(lists.movie_ids[pos] == movie_ids, pos, -1)


def hit_ranks(
    lists: Neighbors, queries: NDArray[np.int64], targets: NDArray[np.int64], k: int
) -> NDArray[np.int64]:
    """0-based rank of each target in its query's top-k list; -1 if absent or no list."""
    rows = list_rows(lists, queries)
    top = lists.neighbor_ids[np.maximum(rows, 0), :k]
    match = (top == targets[:, None]) & (rows >= 0)[:, None]
    return np.where(match.any(axis=1), match.argmax(axis=1), -1)


def bootstrap_ci(
    groups: NDArray[np.int64], values: NDArray[np.float64], seed: int, n_boot: int = BOOTSTRAP
) -> tuple[float, float, float]:
    """Mean of `values` and its 95% percentile interval, resampling whole groups (users)."""
    _, g = np.unique(groups, return_inverse=True)
    sums = np.bincount(g, weights=values)
    counts = np.bincount(g).astype(np.float64)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


def next_watch_scores(
    lists: Neighbors, split: NextWatch, k: int, seed: int
) -> dict[str, float]:
    """HR@k and NDCG@k over the test events, each with a 95% user-bootstrap interval."""
    ranks = hit_ranks(lists, split.queries, split.targets, k)
    hits = (ranks >= 0).astype(np.float64)
    gains = np.where(ranks >= 0, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    hr, hr_lo, hr_hi = bootstrap_ci(split.users, hits, seed)
    nd, nd_lo, nd_hi = bootstrap_ci(split.users, gains, seed)
    return {
        "hr": hr, "hr_lo": hr_lo, "hr_hi": hr_hi,
        "ndcg": nd, "ndcg_lo": nd_lo, "ndcg_hi": nd_hi, "events": float(len(ranks)),
    }


def co_liked_recall(lists: Neighbors, test: Events, k: int) -> float:
    """Mean recall@k over (held-out user, liked movie) pairs of the list against the user's
    other liked movies (denominator min(k, liked - 1)); a movie without a list scores 0."""
    liked = test.take(test.ratings >= LIKED)
    users, n_liked = np.unique(liked.user_ids, return_counts=True)
    keep = np.isin(liked.user_ids, users[n_liked >= 2])
    liked = liked.take(keep)
    if len(liked) == 0:
        return float("nan")
    key = liked.user_ids * (1 << 32) + liked.movie_ids
    rows = list_rows(lists, liked.movie_ids)
    top = lists.neighbor_ids[np.maximum(rows, 0), :k]
    cand = liked.user_ids[:, None] * (1 << 32) + top
    found = np.isin(cand, key) & (top >= 0) & (rows >= 0)[:, None]
    per_user = dict(zip(users, n_liked, strict=True))
    denom = np.minimum(k, np.array([per_user[u] for u in liked.user_ids]) - 1)
    return float((found.sum(axis=1) / denom).mean())


def coverage_at(lists: Neighbors, k: int) -> tuple[float, int]:
    """coverage@k: distinct movies in the top-k of some list over the movies that have a
    (non-empty) list, 0.0 when none has; and that number of lists."""
    top = lists.neighbor_ids[:, :k]
    n_lists = int((top >= 0).any(axis=1).sum())
    return (len(np.unique(top[top >= 0])) / n_lists if n_lists else 0.0), n_lists


def catalog_health(
    lists: Neighbors, train: Ratings, targets: NDArray[np.int64], k: int
) -> dict[str, float]:
    """coverage@k, and mean training rating count of recommended movies vs of the targets."""
    top = lists.neighbor_ids[:, :k]
    shown = top[top >= 0]
    counts = column_counts(train.matrix)

    def popularity(ids: NDArray[np.int64]) -> float:
        pos = np.searchsorted(train.movie_ids, ids)
        pos = np.minimum(pos, len(train.movie_ids) - 1)
        known = train.movie_ids[pos] == ids
        return float(np.where(known, counts[pos], 0).mean()) if len(ids) else float("nan")

    coverage, n_lists = coverage_at(lists, k)
    return {
        "coverage": coverage,
        "lists": float(n_lists),
        "pop_recommended": popularity(shown),
        "pop_targets": popularity(targets),
    }


# --- running recipes ------------------------------------------------------------------------

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


def evaluate_recipe(
    recipe: Recipe, splits: Splits, k: int, seed: int
) -> dict[str, float]:
    """Every metric of one recipe: trained on each protocol's training part only."""
    started = time.perf_counter()
    lists = recipe(splits.next_watch.train, k, seed)
    row = next_watch_scores(lists, splits.next_watch, k, seed)
    train = events_matrix(splits.next_watch.train)
    row |= catalog_health(lists, train, splits.next_watch.targets, k)
    co_lists = recipe(splits.co_train, k, seed)
    row["co_liked_recall"] = co_liked_recall(co_lists, splits.co_test, k)
    row["seconds"] = time.perf_counter() - started
    return row


def validation_split(train: Events, pairs: int = 3) -> NextWatch:
    """A next-watch split inside training events, for tuning without touching test events."""
    return next_watch_split(train, pairs)


# --- the project's recipe -------------------------------------------------------------------


def recipe_lists(ratings: Ratings, settings: Settings, k: int) -> Neighbors:
    """The job's lists for `ratings`: SVD vectors, exact top-`pool` retrieval among eligible
    movies (the same lists LanceDB retrieves), then the co-watch re-rank to k.

    Returns `rerank.RankedNeighbors` for the listed movies, ascending by movie id.
    """
    from recs.embed import embed
    from recs.neighbors import exact_proposer, topk
    from recs.rerank import eligible, listed, rerank

    emb = embed(ratings, settings)
    ok = eligible(ratings, settings)
    pool = min(settings.pool, max(int(ok.sum()) - 1, 1))
    rows = np.flatnonzero(listed(ratings, settings))
    with threadpool_limits(limits=1, user_api="blas"):
        pools = Neighbors.concat(list(topk(
            emb, pool, exact_proposer(emb, ok, pool), ok, settings.batch_size, rows=rows
        ))) if len(rows) else Neighbors(
            ratings.movie_ids[:0], np.empty((0, pool), np.int64), np.empty((0, pool), np.float32)
        )
    return rerank(ratings, pools, k, settings, emb)


def project_recipe(settings: Settings) -> Recipe:
    """The configured recipe as a `Recipe` (trained on the events it is given)."""

    def recipe(train: Events, k: int, seed: int) -> Neighbors:
        return recipe_lists(events_matrix(train), settings.model_copy(update={"seed": seed}), k)

    return recipe


# --- the table ------------------------------------------------------------------------------

COLUMNS = (
    ("hr", "HR@k"), ("ndcg", "NDCG@k"), ("co_liked_recall", "co-liked R@k"),
    ("coverage", "coverage@k"), ("lists", "lists"), ("pop_recommended", "pop rec"),
    ("pop_targets", "pop targets"), ("seconds", "s"),
)


def evaluate(
    folder: Path, settings: Settings, k: int = 10, seed: int = 0, pairs: int = 3,
    recipes: dict[str, Recipe] | None = None,
) -> dict:
    """Every recipe (baselines and the configured one) on the same splits of one dataset.

    Returns {"dataset", "k", "seed", "pairs", "users", "test_events", "rows": {name: metrics}}.
    """
    from recs import baselines

    started = time.perf_counter()
    events = load_events(folder, settings.threads)
    splits = make_splits(events, seed, pairs)
    recipes = recipes or {
        "random": baselines.random_recipe,
        "most popular": baselines.popular_recipe,
        "item-kNN cosine": baselines.item_knn_recipe,
        "EASE": baselines.ease_recipe,
        "tutorial SVD": baselines.tutorial_recipe,
        "close watchers only": baselines.close_watch_recipe(settings.close_window),
        "recs (configured)": project_recipe(settings),
    }
    rows = {}
    for name, recipe in recipes.items():
        rows[name] = evaluate_recipe(recipe, splits, k, seed)
        log.info("%s: %s", name, {m: round(v, 4) for m, v in rows[name].items()})
    return {
        "dataset": str(folder), "k": k, "seed": seed, "pairs": pairs,
        "users": int(len(np.unique(events.user_ids))),
        "test_events": int(len(splits.next_watch.targets)),
        "seconds": round(time.perf_counter() - started, 2),
        "rows": rows,
    }


LIST_COLUMNS = ("movie_id", "rank", "neighbor_id")


def read_lists(path: Path, k: int) -> Neighbors:
    """Top-k lists from a Parquet file with integer columns movie_id, rank, neighbor_id (the
    job's recommendations.parquet, or any table shaped like it): each movie's neighbours in
    rank order, ascending by movie id. scores are all 0 (unused by the metrics)."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise InputError(f"{path}: not found; pass a Parquet file of lists") from None
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None
    for name in LIST_COLUMNS:
        if name not in schema.names or not pa.types.is_integer(schema.field(name).type):
            raise InputError(
                f"{path}: needs an integer column {name!r}; a list file has columns "
                "movie_id, rank, neighbor_id (like recommendations.parquet)"
            )
    cols = pq.read_table(path, columns=list(LIST_COLUMNS))
    for name in LIST_COLUMNS:
        if cols[name].null_count:
            raise InputError(f"{path}: column {name!r} has {cols[name].null_count} empty "
                             "values; every row needs a movie_id, rank and neighbor_id")
    movie, rank, nbr = (cols[n].to_numpy().astype(np.int64) for n in LIST_COLUMNS)
    order = np.lexsort((nbr, rank, movie))
    movie, nbr = movie[order], nbr[order]
    movie_ids, starts = np.unique(movie, return_index=True)
    slot = np.arange(len(movie)) - np.repeat(starts, np.diff(np.r_[starts, len(movie)]))
    keep = slot < k
    ids = np.full((len(movie_ids), k), -1, np.int64)
    ids[np.searchsorted(movie_ids, movie[keep]), slot[keep]] = nbr[keep]
    return Neighbors(movie_ids, ids, np.zeros(ids.shape, np.float32))


def evaluate_lists(
    folder: Path, lists_path: Path, k: int = 10, seed: int = 0, pairs: int = 3,
    threads: int = 2,
) -> dict:
    """Next-watch and catalog numbers of a given list file on the next-watch split of the
    dataset in `folder`, in the shape `evaluate` returns (co-liked recall needs lists trained
    per split, so it is None). Lists trained on all of `folder` have seen the test events."""
    started = time.perf_counter()
    lists = read_lists(lists_path, k)
    events = load_events(folder, threads)
    split = next_watch_split(events, pairs)
    row = next_watch_scores(lists, split, k, seed)
    row |= catalog_health(lists, events_matrix(split.train), split.targets, k)
    row["co_liked_recall"] = None
    row["seconds"] = time.perf_counter() - started
    return {
        "dataset": str(folder), "k": k, "seed": seed, "pairs": pairs,
        "users": int(len(np.unique(events.user_ids))),
        "test_events": int(len(split.targets)),
        "seconds": round(row["seconds"], 2),
        "rows": {Path(lists_path).name: row},
    }


def to_markdown(result: dict, name: str | None = None) -> str:
    """The result of `evaluate` as one markdown table (HR/NDCG with 95% intervals)."""
    k = result["k"]
    head = [label.replace("@k", f"@{k}") for _, label in COLUMNS]
    lines = [
        f"**{name or result['dataset']}**: {result['users']} users, "
        f"{result['test_events']} next-watch test events (last {result['pairs']} pairs per "
        f"user), seed {result['seed']}, {result['seconds']:.0f} s",
        "",
        "| recipe | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for recipe, row in result["rows"].items():
        cells = []
        for key, _ in COLUMNS:
            v = row[key]
            if v is None or v != v:  # not measured
                cells.append("—")
            elif key in ("hr", "ndcg"):
                cells.append(f"{v:.4f} [{row[key + '_lo']:.4f}, {row[key + '_hi']:.4f}]")
            elif key in ("lists",):
                cells.append(f"{int(v)}")
            elif key in ("pop_recommended", "pop_targets", "seconds"):
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{v:.4f}")
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- the nightly quality gate ---------------------------------------------------------------


def quality(
    queries: NDArray[np.int64], targets: NDArray[np.int64], lists: Neighbors, k: int = 10
) -> dict[str, float]:
    """Cheap health numbers of a finished set of lists, for the job's publish gate.

    queries/targets (n,): each user's second-to-last and last movie (`sql/last_pairs.sql`).
    hr: share of pairs whose target is in the top-k list of the query (next-watch HR@k on the
    fixed holdout "each user's last pair"). The lists were trained on these events, so this is
    an in-sample sanity bar that catches a broken run (random lists score ~0.001), not the
    held-out benchmark (`evaluate`). coverage: share of movies with lists that appear in some
    list. lists must be ascending by movie id.
    """
    ranks = hit_ranks(lists, queries, targets, k)
    coverage, n_lists = coverage_at(lists, k)
    return {
        "hr": float((ranks >= 0).mean()) if len(ranks) else 0.0,
        "holdout_pairs": int(len(ranks)),
        "coverage": coverage,
        "lists": n_lists,
    }
