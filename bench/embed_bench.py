"""Benchmark the embedding stage alone (recs.stages.embed.embed): seconds and peak RSS per solver.

    python bench/embed_bench.py [--sizes small,1m,5m,25m] [--variants arpack,randomized]

Variants: recs.stages.embed with settings svd_solver=arpack (scipy's svds, the reference) or
randomized (the default), defaults otherwise. To compare with another version of the code,
run this script from that version's checkout. Each measurement is its own
process: it loads the ratings matrix from a .npz cache (made once per size from the MovieLens
folder with recs.stages.ingest.read_dataset; synthetic folders come from bench/run.py's `dataset`),
then times `embed` alone, wall and CPU seconds (on a shared machine CPU seconds say more; CPU
above wall means two cores worked). Peak RSS is the process's VmHWM after embedding; `base` is
VmHWM before it (interpreter + imports + the matrix), so `peak - base` is what the stage adds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MIB = 2**20


def cached_matrix(name: str, data_cache: Path, cache: Path) -> Path:
    """The .npz of the ratings matrix of size `name`, made once (keyed by the folder's
    synth.json marker or, for ml-latest-small, the ratings file size and mtime)."""
    sys.path.insert(0, str(HERE))
    from run import dataset

    folder = dataset(name, data_cache)
    marker = folder / "synth.json"
    ratings = folder / "ratings.csv"
    stat = ratings.stat()
    key = marker.read_text() if marker.exists() else f"{stat.st_size}:{stat.st_mtime_ns}"
    path = cache / f"{name}.npz"
    key_path = cache / f"{name}.key"
    if path.exists() and key_path.exists() and key_path.read_text() == key:
        return path
    import numpy as np

    from recs.stages.ingest import read_dataset

    cache.mkdir(parents=True, exist_ok=True)
    r, _ = read_dataset(folder)
    m = r.matrix
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape),
             movie_ids=r.movie_ids, user_ids=r.user_ids)
    key_path.write_text(key)
    return path


def vm_hwm() -> int:
    """This process's peak resident set, bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(npz: Path, variant: str, threads: int) -> dict:
    """Load the matrix, embed it once with `variant`, return seconds and RSS."""
    import numpy as np
    from scipy import sparse
    from threadpoolctl import threadpool_limits

    from recs.core.settings import Settings
    from recs.core.types import Ratings
    from recs.stages.embed import embed

    z = np.load(npz)
    matrix = sparse.csr_array((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    ratings = Ratings(matrix, z["user_ids"], z["movie_ids"])
    base = vm_hwm()
    with threadpool_limits(threads, user_api="blas"):
        started, cpu = time.perf_counter(), time.process_time()
        vectors = embed(ratings, Settings(svd_solver=variant, threads=threads)).vectors
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "peak": vm_hwm(), "base": base,
            "shape": list(matrix.shape), "nnz": int(matrix.nnz), "dim": int(vectors.shape[1])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,1m,5m,25m")
    parser.add_argument("--variants", default="arpack,randomized")
    parser.add_argument("--threads", type=int, default=2, help="BLAS and product threads")
    parser.add_argument("--data-cache", type=Path, default=Path("/tmp/recs-bench-data"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/recs-embed-bench"),
                        help="where the .npz ratings matrices are kept")
    parser.add_argument("--child", nargs=2, metavar=("NPZ", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.threads)))
        return
    rows = []
    print("| size | users x movies | ratings | variant | embed s | CPU s | peak RSS MiB "
          "| stage adds MiB |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for name in args.sizes.split(","):
        npz = cached_matrix(name, args.data_cache, args.cache)
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, "--threads", str(args.threads),
                   "--child", str(npz), variant]
            out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1]) | {"size": name,
                                                                      "variant": variant}
            rows.append(row)
            users, movies = row["shape"]
            print(f"| {name} | {users:,} x {movies:,} | {row['nnz']:,} | {variant} | "
                  f"{row['seconds']:.2f} | {row['cpu']:.2f} | {row['peak'] / MIB:,.0f} | "
                  f"{(row['peak'] - row['base']) / MIB:,.0f} |", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
