"""Cached inputs for the top-k / re-rank benchmarks: ratings CSR and SVD embeddings per size.

    python bench/topk_data.py small 1m 25m      # writes /tmp/topk/<size>.npz (once)

The embeddings come from recs.stages.embed with the job's default Settings, so they are the vectors
the job ranks. Not part of the test suite.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from recs.core.settings import Settings
from recs.core.types import Embeddings, Ratings
from recs.stages.embed import embed
from recs.stages.ingest import read_dataset

CACHE = Path("/tmp/topk")
FOLDERS = {
    "small": Path("/work/shared/data/ml-latest-small"),
    "1m": Path("/tmp/recs-bench-data/1m-seed0"),
    "5m": Path("/tmp/recs-bench-data/5m-seed0"),
    "25m": Path("/tmp/recs-bench-data/25m-seed0"),
}


def path(size: str) -> Path:
    return CACHE / f"{size}.npz"


def prepare(size: str) -> None:
    if path(size).exists():
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with threadpool_limits(2, user_api="blas"):
        ratings, _ = read_dataset(FOLDERS[size])
        emb = embed(ratings, Settings())
    m = ratings.matrix.tocsr()
    np.savez(path(size), data=m.data, indices=m.indices, indptr=m.indptr, shape=m.shape,
             user_ids=ratings.user_ids, movie_ids=ratings.movie_ids, vectors=emb.vectors,
             rated_at=ratings.rated_at)
    print(f"{size}: {m.shape} nnz={m.nnz} in {time.perf_counter() - t:.1f} s", flush=True)


def load(size: str) -> tuple[Ratings, Embeddings]:
    prepare(size)
    z = np.load(path(size))
    m = sparse.csr_array((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    if "rated_at" not in z.files:  # a cache from before rating times: make it again
        path(size).unlink()
        return load(size)
    ratings = Ratings(matrix=m, user_ids=z["user_ids"], movie_ids=z["movie_ids"],
                      rated_at=z["rated_at"])
    return ratings, Embeddings(vectors=z["vectors"], movie_ids=z["movie_ids"])


if __name__ == "__main__":
    for s in sys.argv[1:]:
        prepare(s)
