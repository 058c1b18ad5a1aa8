"""LanceDB's approximate (IVF) search against the exact cosine top-k: recall@k and time.

For catalogs where the exact all-pairs top-k stops being sensible (docs/cluster.md). Reads a
run's embeddings.parquet, builds IVF_FLAT and IVF_PQ indexes in a scratch LanceDB, queries a
seeded sample of movies over a grid of nprobes (and refine_factor for IVF_PQ), and scores each
setting against the exact top-k of the same vectors; then names the fastest setting whose
recall@k reaches --target.

    recs run --data /tmp/recs-bench-data/25m-seed0 --out /tmp/ann/out --db /tmp/ann/db
    python bench/ann.py /tmp/ann/out/latest/embeddings.parquet --doc docs/cluster.md
    python bench/ann.py --from bench/results/ann-latest.json --doc docs/cluster.md  # no search

Recall is tie-aware: a found movie counts when its exact similarity reaches the query's exact
k-th best (less 1e-6), so a tie at the edge is not a miss. Times are per query movie, for the
sample searched in one batch (the fastest of 3); "flat" is the same batch search without an
index (what the job's `engine = "lancedb"` does), "exact" numpy's product against every movie.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from docgen import write_section  # bench/docgen.py (python puts bench/ on the path)

os.environ.setdefault("LANCEDB_LOG", "error")  # read once, when lancedb is imported
import lancedb  # noqa: E402
from lancedb.index import IvfFlat, IvfPq  # noqa: E402

from recs.stages.neighbors import ivf_shape  # noqa: E402  (the job's `--engine ivf` setting)

TIE = 1e-6  # float32 cosine noise: a found movie this close to the k-th best is not a miss
# (index, partitions as a divisor of sqrt(movies), shares of them probed, refine_factors);
# IVF_PQ re-scores refine x k candidates with the full vectors (its codes of 4-dimension
# sub-vectors alone rank too coarsely), so its recall follows the partitions it probes
GRID = [
    ("IVF_FLAT", 1, (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2), (None,)),
    ("IVF_FLAT", 4, (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2), (None,)),
    ("IVF_PQ", 1, (1 / 4, 1 / 2), (10,)),
]
REPEAT = 3  # each batch search timed this often, the fastest kept: the box is shared


def exact(vectors: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Each sampled row's exact k-th best cosine similarity (itself excluded), (len(rows),)."""
    sims = vectors[rows] @ vectors.T
    sims[np.arange(len(rows)), rows] = -np.inf
    return np.partition(sims, -k, axis=1)[:, -k]


def recall(vectors: np.ndarray, rows: np.ndarray, found: np.ndarray, kth: np.ndarray) -> float:
    """Share of found rows (len(rows), k; -1 = none) at least as close as the exact k-th."""
    sims = np.einsum("qd,qkd->qk", vectors[rows], vectors[np.maximum(found, 0)])
    hits = (found >= 0) & (sims >= kth[:, None] - TIE)
    return float(hits.mean())


def search(table, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray, k: int,
           nprobes: int | None = None, refine: int | None = None) -> tuple[np.ndarray, float]:
    """Rows of each sample row's k nearest by the index (itself left out), and the fastest
    of REPEAT batch searches in seconds."""
    query = table.search(vectors[rows]).distance_type("cosine").limit(k + 1)
    if nprobes is not None:
        query = query.nprobes(nprobes)
    if refine is not None:
        query = query.refine_factor(refine)
    seconds = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        res = query.select(["movie_id"]).to_arrow()
        seconds = min(seconds, time.perf_counter() - started)
    qi, dist = res["query_index"].to_numpy(), res["_distance"].to_numpy()
    got = np.searchsorted(ids, res["movie_id"].to_numpy())
    found = np.full((len(rows), k), -1, np.int64)
    order = np.lexsort((dist, qi))
    for q in range(len(rows)):  # best first, without the query itself
        mine = got[order][qi[order] == q]
        mine = mine[mine != rows[q]][:k]
        found[q, : len(mine)] = mine
    return found, seconds


def source(path: Path) -> str:
    """Where the vectors came from, by the manifest of the run they belong to."""
    try:
        manifest = json.loads((path.parent / "manifest.json").read_text())
    except (OSError, ValueError):
        return f"`{path}`"
    return (f"the vectors of a `recs run` on {manifest['counts']['ratings']:,} ratings of "
            f"`{manifest['source']['data']}`")


def run(path: Path, sample: int, k: int, seed: int) -> dict:
    table = pq.read_table(path).sort_by("movie_id")
    ids = table["movie_id"].to_numpy()
    vectors = np.stack(table["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(len(ids), min(sample, len(ids)), False))
    started = time.perf_counter()
    kth = exact(vectors, rows, k)
    out: dict = {"movies": len(ids), "dim": vectors.shape[1], "sample": len(rows), "k": k,
                 "exact_ms": 1000 * (time.perf_counter() - started) / len(rows), "rows": [],
                 "source": source(path)}
    with tempfile.TemporaryDirectory() as tmp:
        db = lancedb.connect(tmp)
        flat = db.create_table("flat", data=table)
        search(flat, vectors, rows[:10], ids, k)  # opens the table: not a query's cost
        found, seconds = search(flat, vectors, rows, ids, k)
        out["flat_ms"], out["flat_recall"] = 1000 * seconds / len(rows), recall(
            vectors, rows, found, kth)
        for index, divisor, shares, refines in GRID:
            partitions = max(1, int(np.sqrt(len(ids)) / divisor))
            tbl = db.create_table(f"{index}-{partitions}", data=table)
            started = time.perf_counter()
            config = (IvfFlat(distance_type="cosine", num_partitions=partitions)
                      if index == "IVF_FLAT" else
                      IvfPq(distance_type="cosine", num_partitions=partitions,
                            num_sub_vectors=max(1, vectors.shape[1] // 4)))
            tbl.create_index("vector", config=config)  # with a config: the column, not a metric
            build = time.perf_counter() - started
            search(tbl, vectors, rows[:10], ids, k, 1)  # loads the index: not a query's cost
            probes = {max(1, round(partitions * share)) for share in shares}
            if index == "IVF_FLAT" and ivf_shape(len(ids))[0] == partitions:
                probes.add(ivf_shape(len(ids))[1])  # the job's own setting, measured too
            for nprobes in sorted(probes):
                for refine in refines:
                    found, seconds = search(tbl, vectors, rows, ids, k, nprobes, refine)
                    out["rows"].append({
                        "index": index, "partitions": partitions, "nprobes": nprobes,
                        "refine": refine, "build_s": round(build, 2),
                        "ms": 1000 * seconds / len(rows),
                        "recall": recall(vectors, rows, found, kth),
                    })
                    print(json.dumps(out["rows"][-1]), flush=True)
    return out


def report(out: dict, target: float, command: str) -> str:
    k = out["k"]
    engine = ivf_shape(out["movies"])
    ok = [r for r in out["rows"] if r["recall"] >= target]
    best = min(ok, key=lambda r: r["ms"]) if ok else None
    lines = [
        f"Generated by `{command}`: do not edit by hand; change the script and rerun it.",
        "",
        f"{out['movies']:,} movies x {out['dim']} dims ({out['source']}), "
        f"{out['sample']:,} sampled query movies, "
        f"recall@{k} against the exact cosine top-{k} (tie-aware). Per query movie: exact numpy "
        f"product {out['exact_ms']:.3f} ms; LanceDB flat search {out['flat_ms']:.3f} ms "
        f"(recall {out['flat_recall']:.4f}).",
        "",
        f"| index | partitions | nprobes | share probed | refine_factor | build s | ms per query "
        f"| recall@{k} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in out["rows"]:
        mark = "**" if r is best else ""
        job = " (`ivf`)" if r["index"] == "IVF_FLAT" and (r["partitions"], r["nprobes"]) == \
            engine else ""
        lines.append(f"| {r['index']} | {r['partitions']} | {r['nprobes']}{job} | "
                     f"{r['nprobes'] / r['partitions']:.0%} | {r['refine'] or '—'} | "
                     f"{r['build_s']:.1f} | {mark}{r['ms']:.3f}{mark} | "
                     f"{mark}{r['recall']:.4f}{mark} |")
    lines.append("")
    if best:
        refine = f", refine_factor {best['refine']}" if best["refine"] else ""
        lines.append(
            f"Fastest setting with recall@{k} >= {target}: **{best['index']}, "
            f"{best['partitions']} partitions, nprobes {best['nprobes']}{refine}**: "
            f"{best['ms']:.3f} ms per query movie, {out['flat_ms'] / best['ms']:.1f}x faster "
            f"than the flat search and {out['exact_ms'] / best['ms']:.1f}x faster than this "
            "script's plain numpy product (not the job's exact engine, which is faster: see "
            f"the time model above), recall@{k} {best['recall']:.4f}. It scans "
            f"{best['nprobes'] / best['partitions']:.0%} of the partitions: its work per "
            "query is about that share of an exact scan's.")
    else:
        lines.append(f"No setting reached recall@{k} >= {target}.")
    return "\n".join([*lines, "", engine_note(out, engine)]) + "\n"


def engine_note(out: dict, engine: tuple[int, int]) -> str:
    """What the rows say about the job's own `ivf` setting (partitions, nprobes)."""
    note = (f"`recs run --engine ivf` builds {engine[0]} partitions over these "
            f"{out['movies']:,} movies and probes {engine[1]} (`neighbors.ivf_shape`): ")
    rows = [r for r in out["rows"] if r["index"] == "IVF_FLAT" and r["partitions"] == engine[0]
            and r["nprobes"] <= engine[1]]
    if not rows:
        return note + "no row measured it or fewer probes of the same partitions."
    row = max(rows, key=lambda r: r["nprobes"])
    if row["nprobes"] == engine[1]:
        return note + f"recall@{out['k']} {row['recall']:.4f} (the row marked `ivf`)."
    return note + (f"recall@{out['k']} >= {row['recall']:.4f}, the row with nprobes "
                   f"{row['nprobes']} (IVF_FLAT probing more partitions only adds candidates).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings", type=Path, nargs="?", help="a run's embeddings.parquet")
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.95, help="recall@k to reach")
    parser.add_argument("--doc", type=Path, help="write the section into this file")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--from", dest="source", type=Path,
                        help="no searches: report the results JSON of an earlier run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.source:
        out = json.loads(args.source.read_text())
    else:
        out = run(args.embeddings, args.sample, args.k, args.seed)
        out["command"] = shlex.join(["python", "bench/ann.py", *sys.argv[1:]])
        (args.out / "ann-latest.json").write_text(json.dumps(out, indent=1))
    text = report(out, args.target, out["command"])
    print(text)
    if args.doc:
        write_section(args.doc, "bench/ann.py", "Approximate candidates (IVF)", text)
    return 0 if any(r["recall"] >= args.target for r in out["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
