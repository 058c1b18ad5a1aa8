"""Choose the re-rank's settings on validation splits inside training: never on test events.

For each dataset: the next-watch test events (each user's last 3 pairs) are set aside, then the
last 3 pairs of every user in what remains are the validation events, and everything before
them trains. One SVD and one pool of `--max-pool` candidates per validation query; each grid
point re-ranks those pools (cut to its pool size) and is scored by next-watch HR@10 on the
validation events, as a ratio to EASE's best HR@10 on the same validation events (its lambda
picked on them too, which favours EASE). The table lists the grid points by their worst ratio
over the datasets.

    python bench/tune_rerank.py                   # ml-latest-small and ml-100k, ~2 minutes
    python bench/tune_rerank.py --top 40
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import numpy as np
from quality import datasets_parser  # bench/quality.py: python puts bench/ on the path
from threadpoolctl import threadpool_limits

from recs import baselines
from recs.embed import embed
from recs.evaluate import (
    events_matrix,
    hit_ranks,
    load_events,
    next_watch_split,
    validation_split,
)
from recs.neighbors import Neighbors, exact_proposer, topk
from recs.rerank import eligible, rerank
from recs.settings import Settings
from recs.source import resolve_data

GRID = {
    "close_window": (1, 3, 5, 10),
    "close_weight": (0.0, 1.0, 3.0, 10.0),
    "rerank_cos_power": (0.5, 1.0),
    "rerank_pop_power": (0.2, 0.3, 0.4),
    "pool": (100, 200),
}


def validation_pools(folder: Path, max_pool: int, settings: Settings):
    """(validation split, its training matrix, SVD pools of the validation queries)."""
    events = load_events(folder)
    val = validation_split(next_watch_split(events).train)
    ratings = events_matrix(val.train)
    emb = embed(ratings, settings)
    ok = eligible(ratings, settings)
    rows = np.flatnonzero(np.isin(ratings.movie_ids, val.queries))
    with threadpool_limits(limits=1, user_api="blas"):
        pools = Neighbors.concat(list(topk(
            emb, max_pool, exact_proposer(emb, ok, max_pool), ok, settings.batch_size, rows=rows
        )))
    return val, ratings, pools


def ease_best(val) -> float:
    """EASE's best validation HR@10 over its lambda grid."""
    r, x = baselines.binary(val.train)
    rows = np.flatnonzero(np.isin(r.movie_ids, val.queries))
    best = 0.0
    for lam in baselines.EASE_LAMBDAS:
        with threadpool_limits(limits=1, user_api="blas"):
            score_rows, _ = baselines.ease_rows(x, lam)
            lists = baselines.dense_lists(score_rows, r.movie_ids, 10, rows=rows)
        best = max(best, float((hit_ranks(lists, val.queries, val.targets, 10) >= 0).mean()))
    return best


def main() -> None:
    parser = datasets_parser(__doc__)
    parser.add_argument("--max-pool", type=int, default=max(GRID["pool"]))
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    base = Settings()
    prepared = []
    for data in args.data:
        folder = resolve_data(data, base.cache)
        val, ratings, pools = validation_pools(folder, args.max_pool, base)
        prepared.append((Path(data).name, val, ratings, pools, ease_best(val)))
    names = [p[0] for p in prepared]
    print("EASE validation HR@10: " + ", ".join(f"{n} {p[4]:.4f}" for n, p in
                                                 zip(names, prepared, strict=True)))
    rows = []
    keys = list(GRID)
    for values in itertools.product(*GRID.values()):
        point = dict(zip(keys, values, strict=True))
        if point["close_weight"] == 0 and point["close_window"] != GRID["close_window"][0]:
            continue  # the window does nothing without weight
        settings = base.model_copy(update=point)
        hrs = []
        for _, val, ratings, pools, _ in prepared:
            cut = Neighbors(pools.movie_ids, pools.neighbor_ids[:, : point["pool"]],
                            pools.scores[:, : point["pool"]])
            lists = rerank(ratings, cut, 10, settings, threads=1)
            hrs.append(float((hit_ranks(lists, val.queries, val.targets, 10) >= 0).mean()))
        ratios = [hr / p[4] for hr, p in zip(hrs, prepared, strict=True)]
        rows.append((min(ratios), point, hrs, ratios))
    rows.sort(key=lambda r: -r[0])
    current = {k: getattr(base, k) for k in keys}
    print(f"\n{len(rows)} grid points in {time.perf_counter() - started:.0f} s; "
          f"default: {current}\n")
    print("| " + " | ".join(keys) + " | " + " | ".join(f"HR@10 {n} (x EASE)" for n in names)
          + " |")
    print("|" + "---:|" * (len(keys) + len(names)))
    shown = rows[: args.top] + [r for r in rows[args.top :] if r[1] == current]
    for _, point, hrs, ratios in shown:
        mark = " (default)" if point == current else ""
        cells = [f"{point[k]:g}" for k in keys]
        cells += [f"{h:.4f} ({r:.3f})" for h, r in zip(hrs, ratios, strict=True)]
        print("| " + " | ".join(cells) + mark + " |")


if __name__ == "__main__":
    main()
