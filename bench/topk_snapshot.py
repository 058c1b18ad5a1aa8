"""Save / compare the job's candidate pools and re-ranked lists, to prove a change keeps them.

    python bench/topk_snapshot.py save small /tmp/topk/before-small.npz [--engine lancedb]
    python bench/topk_snapshot.py compare /tmp/topk/before-small.npz /tmp/topk/after-small.npz

Runs the recipe (`recipe.prepare`, `candidates`, `order`) on the cached inputs of
bench/topk_data.py with the job's default Settings (2 BLAS threads). Not part of the tests.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from topk_data import load  # noqa: E402

from recs.core.settings import Settings  # noqa: E402
from recs.stages import recipe  # noqa: E402

FIELDS = ("movie_ids", "neighbor_ids", "scores")
RANKED = FIELDS + ("cosine", "co_watchers", "close_watchers", "next_watchers")


def save(size: str, out: Path, engine: str, batch_size: int, threads: int) -> None:
    ratings, emb = load(size)
    settings = Settings(engine=engine, batch_size=batch_size, threads=threads)
    with threadpool_limits(threads, user_api="blas"):
        t0 = time.perf_counter()
        prep = recipe.prepare(ratings, emb, settings)
        pools = recipe.candidates(prep, settings)
        t1 = time.perf_counter()
        lists = recipe.order(prep, settings, pools)
        t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{size} {engine}: neighbors {t1 - t0:.2f} s, rerank {t2 - t1:.2f} s, "
          f"peak RSS {rss:.2f} GiB", flush=True)
    np.savez(out, **{f"pool_{f}": getattr(pools, f) for f in FIELDS},
             **{f"list_{f}": getattr(lists, f) for f in RANKED})


def compare(a: Path, b: Path) -> bool:
    za, zb = np.load(a), np.load(b)
    same = True
    for key in sorted(set(za.files) ^ set(zb.files)):  # e.g. a snapshot from before a field
        print(f"ONLY IN {a if key in za.files else b}: {key}")
        same = False
    for key in [k for k in za.files if k in zb.files]:
        x, y = za[key], zb[key]
        ok = x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()
        if not ok:
            diff = np.nan if x.shape != y.shape else int(np.sum(~((x == y) | (x != x) & (y != y))))
            print(f"DIFFER {key}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}, cells {diff}")
        same &= ok
    print(("IDENTICAL " if same else "DIFFERENT ") + f"{a} {b}")
    return same


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("size")
    s.add_argument("out", type=Path)
    s.add_argument("--engine", default="exact")
    s.add_argument("--batch-size", type=int, default=1024)
    s.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = p.parse_args()
    if args.cmd == "save":
        save(args.size, args.out, args.engine, args.batch_size, args.threads)
    else:
        sys.exit(0 if compare(args.a, args.b) else 1)


if __name__ == "__main__":
    main()
