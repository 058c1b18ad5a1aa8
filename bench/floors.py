"""The baselines the nightly job is compared against, one per subcommand, each run as its own
process by bench/run.py (so that its wall time and peak RSS are its own).

Each subcommand prints one JSON object on stdout: the seconds of the measured part (without
interpreter start and imports) and whatever counts it found.

    python bench/floors.py read-csv RATINGS_CSV
    python bench/floors.py matmul N_MOVIES [--dim 64] [--block 1024]
    python bench/floors.py products FOLDER [--threads 2]
    python bench/floors.py files MANIFEST_JSON OUT_FOLDER [--threads 2]
    python bench/floors.py tutorial FOLDER [--k 10] [--queries N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SQL = Path(__file__).resolve().parent / "sql"


def read_csv(ratings_csv: Path) -> dict:
    """DuckDB alone parsing every column of ratings.csv once: count and sums, 2 threads."""
    from recs.core.sql import connect  # the job's macros: the same read_csv options

    con = connect(2)
    params = {"ratings_csv": str(ratings_csv)}
    started = time.perf_counter()
    n_ratings = con.execute((SQL / "read_floor.sql").read_text(), params).fetchone()[0]
    seconds = time.perf_counter() - started
    # not timed: the size of the job's matrix, for the matmul floor
    n_movies, n_users = con.execute((SQL / "rated_movies.sql").read_text(), params).fetchone()
    return {"seconds": seconds, "ratings": n_ratings, "movies": n_movies, "users": n_users}


def matmul(n_movies: int, dim: int, block: int) -> dict:
    """The raw all-pairs product of unit float32 (n_movies, dim) embeddings with their
    transpose, `block` rows at a time, nothing kept: the floor of any exact top-k."""
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n_movies, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = np.empty((block, n_movies), dtype=np.float32)
    started = time.perf_counter()
    for lo in range(0, n_movies, block):
        rows = vectors[lo:lo + block]
        np.matmul(rows, vectors.T, out=out[: len(rows)])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "movies": n_movies, "dim": dim, "block": block,
            "products": float(n_movies) * n_movies}


def products(folder: Path, threads: int) -> dict:
    """The job's two sparse floors on FOLDER's ratings, on `threads` threads.

    svd_seconds: the sparse products of the SVD alone: the matrix, weighted as the job weighs
    it, times blocks of dim + oversample columns, as many passes as `embed.randomized_svd`
    makes (2 x power_iters + 2), in the job's row blocks; no orthonormalisation, no eigh.
    co_watch_seconds: the co-watchers of every (movie, pool candidate) pair by the cheapest
    exact count found, `rerank.CoWatch` lookups without close watchers or scoring (a sparse
    product per block of queries, and bitsets for heavy raters, were 2-4x slower). Reading the
    data and the SVD and top-k that make the pools are not timed."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from recs.core.settings import Settings
    from recs.stages import recipe, rerank
    from recs.stages.embed import BlockedProducts, embed, svd_input
    from recs.stages.ingest import load_dataset

    settings = Settings(threads=threads, close_weight=0.0)  # CoWatch without places
    ratings = load_dataset(folder, threads).ratings
    with threadpool_limits(threads, user_api="blas"):
        x = svd_input(ratings.matrix, settings.svd_binary, settings.svd_user_power,
                      settings.svd_movie_power)
        ops = BlockedProducts(x, threads)
        width = settings.dim + settings.svd_oversample
        rng = np.random.default_rng(0)
        left = ops.split(rng.standard_normal((x.shape[0], width), dtype=np.float32))
        right = rng.standard_normal((x.shape[1], width), dtype=np.float32)
        started = time.perf_counter()
        for _ in range(settings.svd_power_iters + 1):
            ops.tdot(left)
            ops.dot(right)
        svd_seconds = time.perf_counter() - started
        del x, ops, left, right
        prep = recipe.prepare(ratings, embed(ratings, settings), settings)
        pools = recipe.candidates(prep, settings)
    rows = rerank.columns_of(ratings.movie_ids, pools.movie_ids)
    cands = rerank.columns_of(ratings.movie_ids, pools.neighbor_ids)
    cands[pools.neighbor_ids < 0] = -1
    started = time.perf_counter()
    prep.counts.watch.counts(rows, cands, 0, threads)
    co_seconds = time.perf_counter() - started
    return {"seconds": svd_seconds + co_seconds, "svd_seconds": svd_seconds,
            "co_watch_seconds": co_seconds, "pairs": int((cands >= 0).sum()),
            "ratings": int(ratings.matrix.nnz)}


def files(manifest: Path, out: Path, threads: int) -> dict:
    """The file-system floor of the write stage: as many files as the run's manifest lists
    (its `files` map), of the same sizes, in the same folders under a new folder in `out` (on
    the same file system as the job's output), written on `threads` threads, 512 files a
    task: open, write, close. No JSON, no hashing, no hard links (an alias is written as a
    file). Making the folders and the bytes, and removing them after, is not timed."""
    sizes = json.loads(manifest.read_text())["files"]
    out = Path(tempfile.mkdtemp(prefix="files-floor-", dir=out))
    for folder in {Path(rel).parent for rel in sizes}:
        (out / folder).mkdir(parents=True, exist_ok=True)
    items = [(f"{out}/{rel}", bytes(meta["bytes"])) for rel, meta in sizes.items()]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

    def write(chunk: list[tuple[str, bytes]]) -> None:
        for path, data in chunk:
            fd = os.open(path, flags, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    chunks = [items[i : i + 512] for i in range(0, len(items), 512)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, chunks))
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return {"seconds": seconds, "files": len(items),
            "bytes": sum(len(data) for _, data in items), "threads": threads}


def tutorial(folder: Path, k: int, queries: int | None) -> dict:
    """The tutorial's recipe without pandas: dense users x movies pivot, full numpy SVD, the
    right singular vectors as embeddings in LanceDB (tmp dir), one L2 query per movie, limit
    k + 1. With `queries`, only that many movies are queried and the query time is scaled up
    to all movies (reported as extrapolated)."""
    import lancedb
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    timings: dict[str, float] = {}
    started = time.perf_counter()
    table = pacsv.read_csv(folder / "ratings.csv")
    users, user_idx = np.unique(table["userId"].to_numpy(), return_inverse=True)
    movies, movie_idx = np.unique(table["movieId"].to_numpy(), return_inverse=True)
    dense = np.zeros((len(users), len(movies)), dtype=np.float64)
    dense[user_idx, movie_idx] = table["rating"].to_numpy()
    timings["pivot"] = time.perf_counter() - started

    mark = time.perf_counter()
    _, _, vt = np.linalg.svd(dense, full_matrices=False)
    embeddings = np.ascontiguousarray(vt.T, dtype=np.float32)  # (n_movies, n_users)
    timings["svd"] = time.perf_counter() - mark

    with tempfile.TemporaryDirectory(prefix="bench-tutorial-") as tmp:
        mark = time.perf_counter()
        db = lancedb.connect(tmp)
        vectors = pa.FixedSizeListArray.from_arrays(
            pa.array(embeddings.ravel()), embeddings.shape[1]
        )
        lance = db.create_table(
            "movies", data=pa.table({"movie_id": pa.array(movies), "vector": vectors})
        )
        timings["store"] = time.perf_counter() - mark

        mark = time.perf_counter()
        asked = len(movies) if queries is None else min(queries, len(movies))
        latencies = np.empty(asked)
        for i in range(asked):
            one = time.perf_counter()
            lance.search(embeddings[i]).limit(k + 1).to_arrow()
            latencies[i] = time.perf_counter() - one
        measured = time.perf_counter() - mark
    timings["queries"] = measured * len(movies) / asked
    timings["total"] = time.perf_counter() - started - measured + timings["queries"]
    return {
        "seconds": timings["total"], "stages": timings, "movies": len(movies),
        "users": len(users), "queries_run": asked, "extrapolated": asked < len(movies),
        "query_p50_ms": float(np.median(latencies) * 1000),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="floor", required=True)
    p = sub.add_parser("read-csv")
    p.add_argument("ratings_csv", type=Path)
    p = sub.add_parser("matmul")
    p.add_argument("n_movies", type=int)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--block", type=int, default=1024)
    p = sub.add_parser("products")
    p.add_argument("folder", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("files")
    p.add_argument("manifest", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("tutorial")
    p.add_argument("folder", type=Path)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries", type=int, default=None)
    args = parser.parse_args(argv)
    if args.floor == "read-csv":
        result = read_csv(args.ratings_csv)
    elif args.floor == "matmul":
        result = matmul(args.n_movies, args.dim, args.block)
    elif args.floor == "products":
        result = products(args.folder, args.threads)
    elif args.floor == "files":
        result = files(args.manifest, args.out, args.threads)
    else:
        result = tutorial(args.folder, args.k, args.queries)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
