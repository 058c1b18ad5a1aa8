"""Metrics of finished lists: next-watch hits, co-liked recall, catalog health, and the nightly
quality gate (`gate`), which needs nothing else from recs.quality.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from recs.core.errors import QualityGateError
from recs.core.types import Neighbors, Ratings
from recs.quality.splits import Events, NextWatch
from recs.stages.embed import column_counts

log = logging.getLogger(__name__)

LIKED = 4.0
BOOTSTRAP = 1000


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
    """HR@k and NDCG@k over the test events, each with a 95% user-bootstrap interval; and the
    same on the "no-tie" events only (hr_nt, ndcg_nt, events_nt: query and target rated at
    different times, so the target really came after the query), nan when there are none."""
    ranks = hit_ranks(lists, split.queries, split.targets, k)
    hits = (ranks >= 0).astype(np.float64)
    gains = np.where(ranks >= 0, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    hr, hr_lo, hr_hi = bootstrap_ci(split.users, hits, seed)
    nd, nd_lo, nd_hi = bootstrap_ci(split.users, gains, seed)
    row = {
        "hr": hr, "hr_lo": hr_lo, "hr_hi": hr_hi,
        "ndcg": nd, "ndcg_lo": nd_lo, "ndcg_hi": nd_hi, "events": float(len(ranks)),
    }
    untied = ~split.tied if split.tied is not None else np.ones(len(ranks), np.bool_)
    row["events_nt"] = float(untied.sum())
    for key, values in (("hr_nt", hits), ("ndcg_nt", gains)):
        if untied.any():
            mean, lo, hi = bootstrap_ci(split.users[untied], values[untied], seed)
        else:
            mean = lo = hi = float("nan")
        row |= {key: mean, key + "_lo": lo, key + "_hi": hi}
    return row

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

def quality(
    queries: NDArray[np.int64], targets: NDArray[np.int64], lists: Neighbors, k: int = 10
) -> dict[str, float]:
    """Cheap health numbers of a finished set of lists, for the job's publish gate.

    queries/targets (n,): each user's second-to-last and last movie (`sql/load/last_pairs.sql`).
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


def gate(
    queries: NDArray[np.int64], targets: NDArray[np.int64], lists: Neighbors,
    min_hr: float | None, k: int = 10,
) -> dict[str, float]:
    """`quality` of the nightly lists, logged; raises QualityGateError below `min_hr`."""
    figures = quality(queries, targets, lists, k)
    log.info(
        "quality: next-watch HR@%d %.4f on %d users' last pairs (in-sample), coverage@%d %.3f",
        k, figures["hr"], figures["holdout_pairs"], k, figures["coverage"],
    )
    if min_hr is not None and figures["hr"] < min_hr:
        raise QualityGateError(
            f"quality gate: next-watch HR@{k} {figures['hr']:.4f} is below --min-hr "
            f"{min_hr}; nothing was published and `latest` still points to the "
            "previous run: check the input, or lower --min-hr",
            figures=figures,
        )
    return figures
