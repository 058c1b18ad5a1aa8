"""Time the top-k ("neighbors") and re-rank stages alone, next to the raw matmul floor.

    python bench/topk_bench.py                          # small,1m,25m; the current code
    python bench/topk_bench.py --sizes small --baseline /tmp/old/neighbors.py \\
        --baseline-rerank /tmp/old/rerank.py            # also time older modules, same run

Inputs: the job's own embeddings (recs.embed with default Settings) of ml-latest-small and of
the synthetic 1m / 25m folders, cached by bench/topk_data.py in /tmp/topk/<size>.npz.
Each measurement runs in its own process (2 BLAS threads, as the job): the stage as
jobs/nightly.py runs it (listed rows, pool of 100 among eligible movies, exact engine,
batch 1024, `--margin` extra candidates), then `rerank.rerank` to 10. Peak memory is the
stage's growth of the peak RSS (VmHWM reset before the stage). The floor is the raw product
(n, 64) @ (64, n) in blocks of 1024 rows into a reused buffer, nothing else, in the same
process. Seconds are the fastest of `--repeat` runs. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
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


def _module(path: str | None, name: str):
    if not path:
        return importlib.import_module(f"recs.{name}")
    spec = importlib.util.spec_from_file_location(f"baseline_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def floor(vectors, block: int = 1024) -> float:
    import numpy as np

    out = np.empty((block, len(vectors)), np.float32)
    started = time.perf_counter()
    for lo in range(0, len(vectors), block):
        rows = vectors[lo : lo + block]
        np.matmul(rows, vectors.T, out=out[: len(rows)])
    return time.perf_counter() - started


def measure(size: str, neighbors_path: str | None, rerank_path: str | None,
            margin: str, engine: str) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(HERE))
    from topk_data import load

    from recs.settings import Settings

    nb = _module(neighbors_path, "neighbors")
    rr = _module(rerank_path, "rerank")
    ratings, emb = load(size)
    settings = Settings()
    with threadpool_limits(settings.threads, user_api="blas"):
        eligible = rr.eligible(ratings, settings)
        rows = np.flatnonzero(rr.listed(ratings, settings))
        pool = min(settings.pool, int(eligible.sum()) - 1)
        extra = max(16, pool // 4) if margin == "job" else int(margin)
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss("VmRSS:")
        t0 = time.perf_counter()
        if engine == "lancedb":
            import tempfile

            from recs import store

            tmp = tempfile.TemporaryDirectory(prefix="topk-bench-")
            table = store.write_table(Path(tmp.name), "t", store.vector_table(emb))
            propose = nb.lancedb_proposer(emb, eligible, pool + extra, table)
        else:
            propose = nb.exact_proposer(emb, eligible, pool + extra)
        parts = list(nb.topk(emb, pool, propose, eligible, settings.batch_size, rows))
        pools = nb.Neighbors.concat(parts)
        t1 = time.perf_counter()
        top_peak = _rss("VmHWM:") - base
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss("VmRSS:")
        t2 = time.perf_counter()
        hint = {"emb": emb} if "emb" in inspect.signature(rr.rerank).parameters else {}
        rr.rerank(ratings, pools, settings.top_k, settings, **hint)
        t3 = time.perf_counter()
        rerank_peak = _rss("VmHWM:") - base
        matmul = floor(emb.vectors)
    return {"size": size, "movies": len(emb.movie_ids), "ratings": int(ratings.matrix.nnz),
            "neighbors_s": t1 - t0, "rerank_s": t3 - t2, "floor_s": matmul,
            "neighbors_peak_mb": top_peak / 2**20, "rerank_peak_mb": rerank_peak / 2**20}


def run(args, size: str, label: str, nb: str | None, rr: str | None) -> dict:
    best = None
    for _ in range(args.repeat if size != "25m" else 1):
        cmd = [sys.executable, __file__, "--one", size, "--margin", args.margin,
               "--engine", args.engine]
        if nb:
            cmd += ["--baseline", nb]
        if rr:
            cmd += ["--baseline-rerank", rr]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**os.environ, "LANCEDB_LOG": "error"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        total = r["neighbors_s"] + r["rerank_s"]
        if best is None or total < best["neighbors_s"] + best["rerank_s"]:
            best = r
    best["code"] = label
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="small,1m,25m")
    p.add_argument("--baseline", help="an older recs/neighbors.py to time as well")
    p.add_argument("--baseline-rerank", help="an older recs/rerank.py to time as well")
    p.add_argument("--margin", default="job", help="extra pool candidates: 'job' or a number")
    p.add_argument("--engine", default="exact", choices=["exact", "lancedb"])
    p.add_argument("--repeat", type=int, default=3, help="runs per size (25m: 1), fastest kept")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.baseline, args.baseline_rerank, args.margin,
                                 args.engine)))
        return
    print("| size | movies | code | neighbors s | floor s | ratio | peak MB | rerank s | "
          "rerank peak MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        runs = [("current", None, None)]
        if args.baseline or args.baseline_rerank:
            runs.insert(0, ("baseline", args.baseline, args.baseline_rerank))
        for label, nb, rr in runs:
            r = run(args, size, label, nb, rr)
            print(f"| {size} | {r['movies']} | {label} | {r['neighbors_s']:.2f} | "
                  f"{r['floor_s']:.2f} | {r['neighbors_s'] / r['floor_s']:.1f}x | "
                  f"{r['neighbors_peak_mb']:.0f} | {r['rerank_s']:.2f} | "
                  f"{r['rerank_peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
