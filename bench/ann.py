"""Approximate search in LanceDB against exact cosine top-k: recall@10, build and query time.

For catalogs where the exact all-pairs top-k gets too slow. Reads a run's embeddings.parquet,
builds an index (IVF_HNSW_SQ and IVF_PQ) in a scratch LanceDB, queries a seeded sample of
movies with nprobes/refine settings, and compares with the exact top-k of the same vectors.

    python bench/ann.py output/latest/embeddings.parquet [--sample 2000] [--k 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lancedb
import numpy as np
import pyarrow.parquet as pq


def exact_topk(vectors: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Row indices of each sampled row's k nearest by cosine (itself excluded)."""
    sims = vectors[rows] @ vectors.T
    sims[np.arange(len(rows)), rows] = -np.inf
    top = np.argpartition(sims, -k, axis=1)[:, -k:]
    return top


def recall(found: list[set[int]], truth: np.ndarray) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(f & set(t.tolist())) / len(t) for f, t in pairs]))


def run(path: Path, sample: int, k: int, seed: int) -> list[dict]:
    table = pq.read_table(path)
    ids = table["movie_id"].to_numpy()
    vectors = np.stack(table["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(len(ids), min(sample, len(ids)), False))
    truth = ids[exact_topk(vectors, rows, k)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        db = lancedb.connect(tmp)
        for index_type in ("IVF_HNSW_SQ", "IVF_PQ"):
            tbl = db.create_table(index_type, data=table, mode="overwrite")
            started = time.perf_counter()
            parts = max(1, int(np.sqrt(len(ids)) // 4))
            tbl.create_index(metric="cosine", vector_column_name="vector",
                             index_type=index_type, num_partitions=parts)
            build = time.perf_counter() - started
            for nprobes in (1, 4, 16):
                started = time.perf_counter()
                query = tbl.search(vectors[rows]).distance_type("cosine").nprobes(nprobes)
                if index_type == "IVF_PQ":
                    query = query.refine_factor(10)  # re-score 10x candidates exactly
                res = query.limit(k + 1).select(["movie_id"]).to_arrow()
                seconds = time.perf_counter() - started
                qi, got = res["query_index"].to_numpy(), res["movie_id"].to_numpy()
                found = [set(got[qi == i].tolist()) - {int(ids[r])} for i, r in enumerate(rows)]
                results.append({
                    "index": index_type, "movies": len(ids), "partitions": parts,
                    "nprobes": nprobes, "build_s": round(build, 2),
                    "query_ms_per_movie": round(1000 * seconds / len(rows), 3),
                    f"recall@{k}": round(recall(found, truth), 4),
                })
                print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings", type=Path)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.embeddings, args.sample, args.k, args.seed)


if __name__ == "__main__":
    main()
