"""Choose the re-rank's settings on validation splits inside training: never on test events.

For each dataset: the next-watch test events (each user's last 3 pairs) are set aside, then the
last 3 pairs of every user in what remains are the validation events, and everything before
them trains. One SVD and one pool of `--max-pool` candidates per validation query
(`recipe.candidates`); each grid point re-ranks those pools, cut to its pool size
(`recipe.order`), and is scored by next-watch HR@10 on the validation events, as a ratio
to EASE's best HR@10 on the same validation events (its lambda picked on them too, which
favours EASE). The table lists the grid points by their worst ratio
over the datasets.

    python bench/tune_rerank.py                   # ml-latest-small and ml-100k, ~5 minutes
    python bench/tune_rerank.py --top 40
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import time
from pathlib import Path

import numpy as np

from recs.core.settings import Settings
from recs.core.types import Neighbors
from recs.quality import baselines
from recs.quality.metrics import hit_ranks
from recs.quality.splits import events_matrix, load_events, next_watch_split, validation_split
from recs.stages import recipe
from recs.stages.embed import embed
from recs.stages.source import resolve_data

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRID = {
    "close_window": (1, 3, 5),
    "close_weight": (0.0, 3.0, 5.0),
    "rerank_cos_power": (0.25, 0.5),
    "rerank_pop_power": (0.2, 0.3),
    "pool": (50, 100, 200),
    "next_window": (1, 3),
    "next_weight": (0.0, 3.0),
    "next_pool": (0, 50),
}


def datasets_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose --data takes dataset folders, by default ml-latest-small and ml-100k."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[str(DATA / "ml-latest-small"),
                                                      str(DATA / "ml-100k")])
    return parser


def validation_pools(folder: Path, max_pool: int, settings: Settings):
    """(validation split, the recipe's inputs for its training matrix, pools of `max_pool`
    candidates for the validation queries)."""
    events = load_events(folder)
    val = validation_split(next_watch_split(events).train)
    ratings = events_matrix(val.train)
    wide = settings.model_copy(update={"pool": max_pool,
                                       "close_window": max(GRID["close_window"]),
                                       "next_window": max(GRID["next_window"])})
    prep = recipe.prepare(ratings, embed(ratings, wide), wide)
    asked = np.isin(ratings.movie_ids[prep.queries], val.queries)
    prep = dataclasses.replace(prep, queries=prep.queries[asked])  # only validation queries
    return val, prep, recipe.candidates(prep, wide)


def ease_best(val) -> float:
    """EASE's best validation HR@10 over its lambda grid."""
    return max(hr for _, hr in baselines.ease_validation(val, 10))


def prepare(
    folders: list[str], base: Settings, max_pool: int = max(GRID["pool"])
) -> list[tuple]:
    """Per dataset: (name, validation split, its training matrix, SVD pools, EASE's best)."""
    prepared = []
    for data in folders:
        folder = resolve_data(data, base.cache)
        val, ratings, pools = validation_pools(folder, max_pool, base)
        prepared.append((Path(data).name, val, ratings, pools, ease_best(val)))
    return prepared


def grid(prepared: list[tuple], base: Settings) -> list[tuple]:
    """Every grid point as (worst ratio to EASE, point, HR@10 per dataset, ratios, no-tie
    HR@10 per dataset), best first."""
    rows = []
    keys = list(GRID)
    for values in itertools.product(*GRID.values()):
        point = dict(zip(keys, values, strict=True))
        if point["close_weight"] == 0 and point["close_window"] != GRID["close_window"][0]:
            continue  # the window does nothing without weight
        if (point["next_weight"] == 0 and point["next_pool"] == 0
                and point["next_window"] != GRID["next_window"][0]):
            continue  # nor the next window without weight or pool
        settings = base.model_copy(update=point)
        hrs, no_tie = [], []
        for _, val, prep, pools, _ in prepared:
            cut = Neighbors(pools.movie_ids, pools.neighbor_ids[:, : point["pool"]],
                            pools.scores[:, : point["pool"]])
            lists = recipe.order(prep, settings, cut, threads=1)
            hits = hit_ranks(lists, val.queries, val.targets, 10) >= 0
            hrs.append(float(hits.mean()))
            no_tie.append(float(hits[~val.tied].mean()))
        ratios = [hr / p[4] for hr, p in zip(hrs, prepared, strict=True)]
        rows.append((min(ratios), point, hrs, ratios, no_tie))
    rows.sort(key=lambda r: -r[0])
    return rows


def current_point(base: Settings) -> dict:
    return {k: getattr(base, k) for k in GRID}


def table(rows: list[tuple], names: list[str], current: dict, top: int) -> str:
    """The best `top` grid points, plus the configured one, as a markdown table."""
    keys = list(GRID)
    lines = ["| " + " | ".join(keys) + " | "
             + " | ".join(f"HR@10 {n} (x EASE)" for n in names) + " | "
             + " | ".join(f"no-tie HR@10 {n}" for n in names) + " |",
             "|" + "---:|" * (len(keys) + 2 * len(names))]
    shown = rows[:top] + [r for r in rows[top:] if r[1] == current]
    for _, point, hrs, ratios, no_tie in shown:
        mark = " (default)" if point == current else ""
        cells = [f"{point[k]:g}" for k in keys]
        cells += [f"{h:.4f} ({r:.3f})" for h, r in zip(hrs, ratios, strict=True)]
        cells += [f"{h:.4f}" for h in no_tie]
        lines.append("| " + " | ".join(cells) + mark + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = datasets_parser(__doc__)
    parser.add_argument("--max-pool", type=int, default=max(GRID["pool"]))
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    base = Settings()
    print(f"close_ties: {base.close_ties}")
    prepared = prepare(args.data, base, args.max_pool)
    names = [p[0] for p in prepared]
    print("EASE validation HR@10: " + ", ".join(f"{p[0]} {p[4]:.4f}" for p in prepared))
    rows = grid(prepared, base)
    current = current_point(base)
    print(f"\n{len(rows)} grid points in {time.perf_counter() - started:.0f} s; "
          f"default: {current}\n")
    print(table(rows, names, current, args.top), end="")


if __name__ == "__main__":
    main()
