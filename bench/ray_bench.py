"""Serial vs a local two-node Ray cluster, per stage, on `recs synth` data, in one run.

    python bench/ray_bench.py                           # 1M ratings: about 2 minutes here
    python bench/ray_bench.py --ratings 25000000 --users 162000 --movies 62000

Writes the synthetic set once (reused while the sizes match), runs the nightly job serially,
then with `--ray` against a two-node cluster (`ray.cluster_utils.Cluster`, 1 CPU per node,
no dashboard, its own RAY_TMPDIR and token, shut down at the end: never `ray stop`), checks
both publish the same bytes, and prints seconds per stage for each and the difference
(Ray's overhead, or its gain). On one 2-core machine both nodes share the same two cores:
this measures overhead, not speed-up ("neighbors" on the cluster includes starting the worker
processes, a fixed cost per run). Needs the `ray` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))  # short: Ray's socket paths live under it
(TMP / "token").write_text(secrets.token_hex(32))
os.environ.update({  # before Ray is imported: it reads these once
    "RAY_TMPDIR": str(TMP / "t"), "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN_PATH": str(TMP / "token"), "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep 127.0.0.1: the cluster is loopback-only
})

from ray.cluster_utils import Cluster  # noqa: E402

from recs.core.settings import Settings  # noqa: E402
from recs.jobs import nightly  # noqa: E402
from recs.tools.synth import write_synthetic  # noqa: E402

STORE_BYTES = 300 * 1024**2


def synth(cache: Path, users: int, movies: int, ratings: int) -> Path:
    folder = cache / f"{ratings}-{users}-{movies}-seed0"
    if not (folder / "ratings.csv").exists():
        write_synthetic(folder, users, movies, ratings, 0)
    return folder


def hashes(manifest: dict) -> dict:
    skip = ("manifest.json", "json/v1/changes.json")
    return {k: v["sha256"] for k, v in manifest["files"].items() if k not in skip}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=6500)
    ap.add_argument("--movies", type=int, default=12500)
    ap.add_argument("--ratings", type=int, default=1_000_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/recs-bench-data/ray"))
    args = ap.parse_args()
    data = synth(args.cache, args.users, args.movies, args.ratings)
    node = {"num_cpus": 1, "object_store_memory": STORE_BYTES, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        runs = {}
        for name, ray in (("serial", None), ("ray 2 nodes", cluster.address)):
            root = TMP / name.replace(" ", "_")
            settings = Settings(data=str(data), out=root / "out", db=root / "db",
                                cache=root / "cache", ray=ray)
            runs[name] = nightly.run(settings).manifest
    finally:
        cluster.shutdown()
    same = hashes(runs["serial"]) == hashes(runs["ray 2 nodes"])
    serial, ray = runs["serial"]["stages"], runs["ray 2 nodes"]["stages"]
    # serial splits top-k and re-rank; on the cluster both are in "neighbors"
    rerank = serial.get("rerank", 0.0)
    serial = {k: v + rerank if k == "neighbors" else v for k, v in serial.items()
              if k != "rerank"}
    print(f"{args.ratings} ratings, {args.movies} movies, {args.users} users; "
          f"same bytes: {same}\n")
    print("| stage | serial s | ray 2 nodes s | difference s |\n|---|---:|---:|---:|")
    for stage in serial:
        a, b = serial[stage], ray.get(stage, 0.0)
        print(f"| {stage} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    a, b = runs["serial"]["seconds"], runs["ray 2 nodes"]["seconds"]
    print(f"| **whole run** | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    (TMP / "result.json").write_text(json.dumps({"same_bytes": same, "serial": runs["serial"]
                                                 ["stages"], "ray": ray}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
