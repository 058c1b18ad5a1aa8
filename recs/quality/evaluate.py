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
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recs.core.errors import InputError
from recs.core.settings import Settings
from recs.core.types import Neighbors, Ratings
from recs.quality import baselines, sequential
from recs.quality.metrics import catalog_health, co_liked_recall, next_watch_scores
from recs.quality.splits import (
    Events,
    Recipe,
    Splits,
    events_matrix,
    load_events,
    make_splits,
    next_watch_split,
)
from recs.stages import recipe
from recs.stages.embed import embed

log = logging.getLogger(__name__)


def evaluate_recipe(
    train_lists: Recipe, splits: Splits, k: int, seed: int
) -> dict[str, float]:
    """Every metric of one recipe: trained on each protocol's training part only."""
    started = time.perf_counter()
    lists = train_lists(splits.next_watch.train, k, seed)
    row = next_watch_scores(lists, splits.next_watch, k, seed)
    train = events_matrix(splits.next_watch.train)
    row |= catalog_health(lists, train, splits.next_watch.targets, k)
    co_lists = train_lists(splits.co_train, k, seed)
    row["co_liked_recall"] = co_liked_recall(co_lists, splits.co_test, k)
    row["seconds"] = time.perf_counter() - started
    return row

def recipe_lists(ratings: Ratings, settings: Settings, k: int) -> Neighbors:
    """The job's lists for `ratings` (`recipe.recommend` on its SVD vectors), top k:
    `rerank.RankedNeighbors` for the listed movies, ascending by movie id."""
    settings = settings.model_copy(update={"top_k": k})
    return recipe.recommend(ratings, embed(ratings, settings), settings)


def project_recipe(settings: Settings) -> Recipe:
    """The configured recipe as a `Recipe` (trained on the events it is given)."""

    def recipe(train: Events, k: int, seed: int) -> Neighbors:
        return recipe_lists(events_matrix(train), settings.model_copy(update={"seed": seed}), k)

    return recipe

COLUMNS = (
    ("hr", "HR@k"), ("ndcg", "NDCG@k"), ("hr_nt", "HR@k no-tie"), ("ndcg_nt", "NDCG@k no-tie"),
    ("co_liked_recall", "co-liked R@k"),
    ("coverage", "coverage@k"), ("lists", "lists"), ("pop_recommended", "pop rec"),
    ("pop_targets", "pop targets"), ("seconds", "s"),
)

def evaluate(
    folder: Path, settings: Settings, k: int = 10, seed: int = 0, pairs: int = 3,
    recipes: dict[str, Recipe] | None = None,
) -> dict:
    """Every recipe (baselines and the configured one) on the same splits of one dataset.

    Returns {"dataset", "k", "seed", "pairs", "users", "test_events", "no_tie_events",
    "rows": {name: metrics}}.
    """
    started = time.perf_counter()
    events = load_events(folder, settings.threads)
    splits = make_splits(events, seed, pairs)
    recipes = recipes or {
        "random": baselines.random_recipe,
        "most popular": baselines.popular_recipe,
        "item-kNN cosine": baselines.item_knn_recipe,
        "EASE": baselines.ease_recipe,
        "tutorial SVD": baselines.tutorial_recipe,
        "close watchers only": baselines.close_watch_recipe(settings.close_window,
                                                            settings.close_ties),
        **sequential.recipes(),
        "recs (configured)": project_recipe(settings),
    }
    rows = {}
    for name, train_lists in recipes.items():
        rows[name] = evaluate_recipe(train_lists, splits, k, seed)
        log.info("%s: %s", name, {m: round(v, 4) for m, v in rows[name].items()})
    return {
        "dataset": str(folder), "k": k, "seed": seed, "pairs": pairs,
        "users": int(len(np.unique(events.user_ids))),
        "test_events": int(len(splits.next_watch.targets)),
        "no_tie_events": int((~splits.next_watch.tied).sum()),
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
        "no_tie_events": int((~split.tied).sum()),
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
        f"user), {result.get('no_tie_events', '?')} of them no-tie, seed {result['seed']}, "
        f"{result['seconds']:.0f} s",
        "",
        "| recipe | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for label, row in result["rows"].items():
        cells = []
        for key, _ in COLUMNS:
            v = row[key]
            if v is None or v != v:  # not measured
                cells.append("—")
            elif key in ("hr", "ndcg", "hr_nt", "ndcg_nt"):
                cells.append(f"{v:.4f} [{row[key + '_lo']:.4f}, {row[key + '_hi']:.4f}]")
            elif key in ("lists",):
                cells.append(f"{int(v)}")
            elif key in ("pop_recommended", "pop_targets", "seconds"):
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{v:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
