"""Time the recipe's top-k ("neighbors") and re-rank stages alone, next to the raw matmul floor.

    python bench/topk_bench.py                          # small,1m,25m
    python bench/topk_bench.py --sizes small --engine lancedb

Inputs: the job's own embeddings (recs.stages.embed with default Settings) of ml-latest-small
and of the synthetic 1m / 25m folders, cached by bench/topk_data.py in /tmp/topk/<size>.npz.
Each measurement runs in its own process (2 BLAS threads, as the job) and calls the recipe as
the job does (recs.stages.recipe): `prepare` (the counts the re-rank reads), `candidates`
(pool of 100 among eligible movies), then `order` (re-rank to 10). Peak memory is the stage's
growth of the peak RSS (VmHWM reset before the stage). The floor is the raw product
(n, 64) @ (64, n) in blocks of 1024 rows into a reused buffer, nothing else, in the same
process. Seconds are the fastest of `--repeat` runs. To compare with another version of the
code, run this script from that version's checkout. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def floor(vectors, block: int = 1024) -> float:
    import numpy as np

    out = np.empty((block, len(vectors)), np.float32)
    started = time.perf_counter()
    for lo in range(0, len(vectors), block):
        rows = vectors[lo : lo + block]
        np.matmul(rows, vectors.T, out=out[: len(rows)])
    return time.perf_counter() - started


def measure(size: str, engine: str) -> dict:
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(HERE))
    from topk_data import load

    from recs.core.settings import Settings
    from recs.stages import recipe

    ratings, emb = load(size)
    settings = Settings(engine=engine)
    with threadpool_limits(settings.threads, user_api="blas"):
        t = time.perf_counter()
        prep = recipe.prepare(ratings, emb, settings)
        prepare_s = time.perf_counter() - t
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss("VmRSS:")
        t0 = time.perf_counter()
        pools = recipe.candidates(prep, settings)
        t1 = time.perf_counter()
        top_peak = _rss("VmHWM:") - base
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss("VmRSS:")
        t2 = time.perf_counter()
        recipe.order(prep, settings, pools)
        t3 = time.perf_counter()
        rerank_peak = _rss("VmHWM:") - base
        matmul = floor(emb.vectors)
    return {"size": size, "movies": len(emb.movie_ids), "ratings": int(ratings.matrix.nnz),
            "prepare_s": prepare_s, "neighbors_s": t1 - t0, "rerank_s": t3 - t2,
            "floor_s": matmul, "neighbors_peak_mb": top_peak / 2**20,
            "rerank_peak_mb": rerank_peak / 2**20}


def run(args, size: str) -> dict:
    best = None
    for _ in range(args.repeat if size != "25m" else 1):
        cmd = [sys.executable, __file__, "--one", size, "--engine", args.engine]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**os.environ, "LANCEDB_LOG": "error"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        total = r["neighbors_s"] + r["rerank_s"]
        if best is None or total < best["neighbors_s"] + best["rerank_s"]:
            best = r
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="small,1m,25m")
    p.add_argument("--engine", default="exact", choices=["exact", "lancedb"])
    p.add_argument("--repeat", type=int, default=3, help="runs per size (25m: 1), fastest kept")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.engine)))
        return
    print("| size | movies | prepare s | neighbors s | floor s | ratio | peak MB | rerank s | "
          "rerank peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        r = run(args, size)
        print(f"| {size} | {r['movies']} | {r['prepare_s']:.2f} | {r['neighbors_s']:.2f} | "
              f"{r['floor_s']:.2f} | {r['neighbors_s'] / r['floor_s']:.1f}x | "
              f"{r['neighbors_peak_mb']:.0f} | {r['rerank_s']:.2f} | "
              f"{r['rerank_peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
