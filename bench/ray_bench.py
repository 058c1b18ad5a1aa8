"""Serial vs a local two-node Ray cluster per stage, and the driver's memory against ratings.

    python bench/ray_bench.py                  # 1m only, no doc: a few minutes here
    python bench/ray_bench.py --sizes 1m,5m --rss-sizes 1m,5m,25m --doc docs/cluster.md

Every run is `recs run` as its own process on a `recs synth` folder of bench/run.py's sizes
(generated once into --cache and shared with it), timed by wall clock, its peak RSS from
os.wait4. First the serial runs of --rss-sizes that are not in --sizes, with no cluster up;
then a two-node cluster (`ray.cluster_utils.Cluster`, 1 CPU per node, no dashboard, its own
RAY_TMPDIR and token, shut down at the end: never `ray stop`) and, per size of --sizes, a
serial run and `recs run --ray ADDRESS` back to back, checked to publish the same bytes. On
one 2-core machine both nodes share the same two cores: the table shows Ray's overhead, not a
speed-up.

From the serial runs' peak RSS it fits RSS = a + b x ratings (least squares) and answers: the
most ratings a driver of 8/16/64 GiB can take, and what the driver and each cluster node would
hold at 1B ratings. From the serial runs' seconds per stage (with bench/run.py's, `--speed`;
per size the faster of the two) it fits each stage's growth and answers, for 1B ratings and
1M movies: each stage's seconds on one core, which dominates, how many 16-core nodes finish
inside an hour, and where the exact top-k stops being sensible (with bench/ann.py's recall
for the `ivf` engine, `--ann`). `--doc` replaces the generated section of docs/cluster.md;
the results go to bench/results/ray-latest.json, and `--from` that file reports them again
without running:

    python bench/ray_bench.py --from bench/results/ray-latest.json --doc docs/cluster.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# python puts bench/ on the path: bench/run.py's sizes, data cache and measurement
from docgen import write_section
from run import SYNTHETIC, dataset, recs_command, run_process

from recs.stages.neighbors import ivf_shape

HERE = Path(__file__).resolve().parent
MIB, GIB = 2**20, 2**30
STORE_BYTES = 300 * MIB  # object store per node
DRIVER_GIB = (8, 16, 64)
TARGET_RATINGS = 1_000_000_000
TARGET_MOVIES = 1_000_000
NODE_CORES, WINDOW_S = 16, 3600
JOB_THREADS = 2  # every measured run used the job's default --threads: seconds x 2 = core-s
# what each stage's work grows with, from its algorithm: the synthetic sizes grow movies as
# about sqrt(ratings), so their seconds cannot tell movies² from ratings (the fit's exponent
# column checks the choice instead)
GROWTH = {"read": "ratings", "embed": "ratings", "prepare": "ratings", "neighbors": "movies²",
          "rerank": "ratings", "quality": "movies", "write": "movies", "lancedb": "movies"}
FANNED = {"neighbors", "rerank", "write"}  # run as Ray tasks; the rest stay on the driver
RUN_FILES = ("manifest.json", "json/v1/changes.json")  # name the run: differ by design
# what `RayExecutor.share` logs for each object it ships: bytes in the object store
SHARED = re.compile(r"ray: shared (\d+) bytes")


def ray_environment(tmp: Path) -> dict[str, str]:
    """Ray's files under `tmp` and a token of its own (nothing in ~/.ray or /tmp/ray)."""
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {"RAY_TMPDIR": str(tmp / "t"), "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # keep 127.0.0.1: loopback-only cluster


def job(recs: list[str], folder: Path, work: Path, extra: list[str]) -> dict:
    """One `recs run` in a process of its own: wall s, peak RSS, stages, file hashes, and the
    object-store bytes it shipped (cluster runs)."""
    out, log = work / "out", work / "job"
    work.mkdir(parents=True)
    cmd = [*recs, "run", "--data", str(folder), "--out", str(out), "--db", str(work / "db"),
           "--cache", str(work / "cache"), *extra]
    measured = run_process(cmd, log)
    err = Path(f"{log}.err").read_text(errors="replace")
    if measured.returncode != 0:
        sys.exit(f"bench: {shlex.join(cmd)} failed (exit {measured.returncode}):\n"
                 + "\n".join(err.strip().splitlines()[-5:]))
    manifest = json.loads((out / "latest" / "manifest.json").read_text())
    return {
        "wall": round(measured.wall, 3), "peak_rss": measured.peak_rss,
        "stages": manifest["stages"], "counts": manifest["counts"],
        "hashes": {k: v["sha256"] for k, v in manifest["files"].items() if k not in RUN_FILES},
        "shared_bytes": [int(n) for n in SHARED.findall(err)],
        "shards": [int(n) for n in re.findall(r" in (\d+) shards", err)],
    }


def fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """(a, b) of y = a + b x, least squares over (x, y) points."""
    x, y = np.array(points, dtype=np.float64).T
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def measure(args: argparse.Namespace) -> dict:
    recs = recs_command(None)
    if recs is None:
        sys.exit("bench: `recs run` is not available: pip install -e '.[ray]'")
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "serial": {},
                     "cluster": {}, "sizes": {}}
    # short: Ray's socket paths live under it
    with tempfile.TemporaryDirectory(prefix="rb", dir="/tmp") as tmp:
        work = Path(tmp)
        folders = {n: dataset(n, args.cache) for n in dict.fromkeys(args.rss_sizes + args.sizes)}

        def run(name: str, kind: str, extra: list[str]) -> None:
            results[kind][name] = job(recs, folders[name], work / f"{kind}-{name}", extra)
            results["sizes"][name] = results[kind][name]["counts"]
            print(f"bench: {name} {kind} {results[kind][name]['wall']:.1f} s", flush=True)

        for name in args.rss_sizes:  # serial only, before any cluster is up
            if name not in args.sizes:
                run(name, "serial", [])
        if not args.sizes:
            return results
        os.environ.update(ray_environment(work))  # Ray reads these once, when imported
        from ray.cluster_utils import Cluster

        node = {"num_cpus": 1, "object_store_memory": STORE_BYTES,
                "node_ip_address": "127.0.0.1"}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        try:
            cluster.add_node(**node)
            cluster.wait_for_nodes()
            for name in args.sizes:  # each pair back to back: the shared box drifts less
                run(name, "serial", [])
                run(name, "cluster", ["--ray", cluster.address])
        finally:
            cluster.shutdown()
    return results


def model(results: dict) -> dict:
    """The RSS fit and what follows from it (bytes; ratings)."""
    points = sorted((results["sizes"][n]["ratings"], run["peak_rss"])
                    for n, run in results["serial"].items())
    a, b = fit(points) if len(points) >= 2 else (float("nan"), float("nan"))
    shared = [(results["sizes"][n]["ratings"], max(run["shared_bytes"]))
              for n, run in results["cluster"].items() if run["shared_bytes"]]
    sa, sb = fit(shared) if len(shared) >= 2 else (float("nan"), float("nan"))
    return {
        "rss_a": a, "rss_b": b, "points": points,
        "max_ratings": {gib: (gib * GIB - a) / b for gib in DRIVER_GIB},
        "driver_at_target": a + b * TARGET_RATINGS,
        "shared_a": sa, "shared_b": sb, "shared_points": shared,
        "node_at_target": sa + sb * TARGET_RATINGS,
    }


def stage_rows(serial: dict, cluster: dict) -> list[tuple[str, float, float]]:
    """(stage, serial s, cluster s); the cluster runs top-k and re-rank as one stage."""
    s = dict(serial["stages"])
    s["neighbors"] = s.get("neighbors", 0.0) + s.pop("rerank", 0.0)
    c = cluster["stages"]
    names = {"neighbors": "rank: top-k + re-rank"}
    rows = [(names.get(k, k), s[k], c.get(k, 0.0)) for k in s]
    rows.append(("stages together", sum(s.values()), sum(c.values())))
    rows.append(("**whole process** (wall)", serial["wall"], cluster["wall"]))
    return rows


def cluster_section(name: str, serial: dict, ray: dict, counts: dict) -> list[str]:
    """The per-stage table of one size, serial vs cluster."""
    same = "yes" if serial["hashes"] == ray["hashes"] else "**NO**"
    shipped = ", ".join(f"{n / MIB:.1f} MiB" for n in ray["shared_bytes"])
    lines = [
        f"### {name}: {counts['ratings']:,} ratings, {counts['movies_embedded']:,} movies, "
        f"{counts['users']:,} users",
        "",
        f"Cluster: 2 nodes of 1 CPU, {'/'.join(map(str, ray['shards']))} shards; shipped "
        f"once per run (ranking inputs, then the sorted lists): {shipped}. Same bytes as the "
        f"serial run: {same}.",
        "",
        "| stage | serial s | cluster s | cluster − serial s |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {stage} | {a:.2f} | {b:.2f} | {b - a:+.2f} |"
              for stage, a, b in stage_rows(serial, ray)]
    a, b = serial["peak_rss"] / MIB, ray["peak_rss"] / MIB
    return [*lines, f"| driver peak RSS MiB | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |", ""]


def memory_section(results: dict, m: dict) -> list[str]:
    """The driver's peak RSS per serial run, the fit, and the scale model."""
    lines = [
        "### Driver memory against ratings (serial runs)",
        "",
        "| size | ratings | movies | peak RSS MiB | fit MiB | bytes per rating |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    serial = sorted(results["serial"].items(), key=lambda item: results["sizes"][item[0]]
                    ["ratings"])
    for name, run in serial:
        counts = results["sizes"][name]
        n = counts["ratings"]
        lines.append(f"| {name} | {n:,} | {counts['movies_embedded']:,} | "
                     f"{run['peak_rss'] / MIB:,.0f} | {(m['rss_a'] + m['rss_b'] * n) / MIB:,.0f}"
                     f" | {run['peak_rss'] / n:,.0f} |")
    if len(m["points"]) < 2:
        return [*lines, "", "(The fit needs serial runs at two sizes or more: --rss-sizes.)"]
    movies = [results["sizes"][name]["movies_embedded"] for name, _ in serial]
    largest = max(n for n, _ in m["points"])
    lines += [
        "",
        f"Fit: **peak RSS = {m['rss_a'] / MIB:,.0f} MiB + {m['rss_b']:,.1f} bytes x ratings**.",
        "",
        "| driver memory | most ratings (where the fit reaches the memory) |",
        "|---|---:|",
        *[f"| {gib} GiB | {m['max_ratings'][gib] / 1e6:,.0f} M |" for gib in DRIVER_GIB],
        "",
        f"At {TARGET_RATINGS / 1e9:.0f}B ratings the driver would need "
        f"**{m['driver_at_target'] / GIB:,.0f} GiB**: it reads every rating, runs the SVD and "
        "holds every list. Each cluster node holds one copy of what the driver ships per run, "
        "read zero-copy by every task on that node: ",
    ]
    if len(m["shared_points"]) >= 2:
        lines[-1] += (f"{m['shared_b']:,.1f} bytes per rating from the cluster runs, so about "
                      f"**{m['node_at_target'] / GIB:,.0f} GiB of object store per node** at "
                      "1B, plus each task's working set (one range of query movies).")
    else:
        lines[-1] += "(a figure per rating needs cluster runs at two sizes: --sizes)."
    grown = ", ".join(f"{n:,}" for n in movies)
    return [*lines, "", (
        f"Caveats: the sizes grow movies with ratings ({grown}), "
        "so the fit folds the per-movie terms (lists, vectors) into bytes per rating; "
        f"{TARGET_RATINGS / 1e9:.0f}B ratings is {TARGET_RATINGS / largest:,.0f}x the largest "
        "size measured."), ""]


def size_of(counts: dict, growth: str) -> float:
    """The count a stage's work grows with, for one input's counts."""
    movies = counts.get("movies_embedded", counts.get("movies"))
    return {"ratings": counts["ratings"], "movies": movies, "movies²": movies**2}[growth]


def stage_seconds(results: dict, speed: dict | None) -> dict[str, dict]:
    """Per synthetic size: counts and each stage's seconds, the faster of this bench's serial
    run and bench/run.py's (the shared box drifts between runs; the faster is the truer)."""
    sizes = {}
    for name, run in results["serial"].items():
        sizes[name] = {"counts": results["sizes"][name], "stages": dict(run["stages"])}
    for name, size in (speed or {}).get("sizes", {}).items():
        stages = (size.get("job") or {}).get("stages")
        if name not in SYNTHETIC or name.endswith("-hard") or not stages:  # another shape
            continue
        mine = sizes.setdefault(name, {"counts": {"ratings": size["ratings"],
                                                  "movies": size["movies"]}, "stages": {}})
        for stage, seconds in stages.items():
            mine["stages"][stage] = min(seconds, mine["stages"].get(stage, seconds))
    return sizes


def time_model(sizes: dict) -> dict[str, dict]:
    """Per stage: seconds = b x size (least squares through 0, so the largest size weighs
    most), the log-log exponent of seconds against size (1.0 = grows as assumed), and the
    one-core seconds at TARGET_RATINGS and TARGET_MOVIES."""
    target = {"ratings": TARGET_RATINGS, "movies": TARGET_MOVIES}
    model = {}
    for stage, growth in GROWTH.items():
        points = [(size_of(s["counts"], growth), s["stages"][stage]) for s in sizes.values()
                  if s["stages"].get(stage, 0) > 0]
        if len(points) < 2:
            continue
        x, t = np.array(points).T
        b = float((x * t).sum() / (x * x).sum())
        model[stage] = {"growth": growth, "b": b, "points": len(points),
                        "exponent": float(np.polyfit(np.log(x), np.log(t), 1)[0]),
                        "core_s": b * size_of(target, growth) * JOB_THREADS}
    return model


def ivf_recall(ann: dict | None) -> dict | None:
    """The `ivf` engine's setting on bench/ann.py's catalog and what bench/ann.py measured
    for it: recall at the largest measured nprobes not above the engine's (IVF_FLAT probes a
    superset of partitions as nprobes grows, so recall never falls: a lower bound) and the
    time at the smallest measured nprobes not below it (an upper bound)."""
    if not ann:
        return None
    partitions, nprobes = ivf_shape(ann["movies"])
    rows = [r for r in ann["rows"] if r["index"] == "IVF_FLAT" and r["partitions"] == partitions]
    below = [r for r in rows if r["nprobes"] <= nprobes]
    above = [r for r in rows if r["nprobes"] >= nprobes]
    if not below or not above:
        return None
    return {"movies": ann["movies"], "partitions": partitions, "nprobes": nprobes,
            "recall": max(r["recall"] for r in below), "k": ann["k"],
            "ms": min(r["ms"] for r in above), "exact_ms": ann["exact_ms"]}


def scale_section(sizes: dict, model: dict, ivf: dict | None, sources: str) -> list[str]:
    """The time scale model at TARGET_RATINGS and TARGET_MOVIES, as markdown lines."""
    target = f"{TARGET_RATINGS / 1e9:.0f}B ratings and {TARGET_MOVIES / 1e6:.0f}M movies"
    lines = [
        f"### Time at {target}",
        "",
        f"Per-stage seconds of the serial runs at {', '.join(sorted(sizes, key=len))} "
        f"({sources}; per size and stage the faster measurement), fitted as seconds = b x "
        "what the stage's work grows with (least squares through zero). The exponent is "
        "the slope of log seconds on log size over the sizes: near 1.0, the stage grows as "
        f"assumed. One-core seconds are the fitted seconds x {JOB_THREADS} (every run had "
        f"--threads {JOB_THREADS} on {JOB_THREADS} cores): an upper bound for a stage that "
        "keeps one core busy.",
        "",
        f"| stage | where | grows with | exponent | one-core s at {target} | share |",
        "|---|---|---|---:|---:|---:|",
    ]
    total = sum(m["core_s"] for m in model.values())
    for stage, m in sorted(model.items(), key=lambda item: -item[1]["core_s"]):
        where = "cluster" if stage in FANNED else "driver"
        lines.append(f"| {stage} | {where} | {m['growth']} | {m['exponent']:.2f} | "
                     f"{m['core_s']:,.0f} | {m['core_s'] / total:.0%} |")
    driver = sum(m["core_s"] for s, m in model.items() if s not in FANNED)
    fanned = sum(m["core_s"] for s, m in model.items() if s in FANNED)
    top = max(model, key=lambda s: model[s]["core_s"])
    lines += ["", (
        f"**{top}** dominates ({model[top]['core_s'] / 3600:,.1f} core-hours of "
        f"{total / 3600:,.1f}). Assuming the cluster stages divide by cores and the driver "
        f"stages do not speed up at all: the driver needs {driver:,.0f} s whatever the "
        "cluster, ")]
    if driver >= WINDOW_S:
        lines[-1] += (f"more than the {WINDOW_S / 3600:.0f}-hour window on its own: no number "
                      "of nodes finishes in time until the driver's stages are parallel.")
    else:
        nodes = int(np.ceil(fanned / (NODE_CORES * (WINDOW_S - driver))))
        finish = driver + fanned / (NODE_CORES * nodes)
        lines[-1] += (
            f"and the cluster stages {fanned:,.0f} core-s, so **{nodes} node{'s' * (nodes > 1)}"
            f" of {NODE_CORES} cores finish{'es' * (nodes == 1)} inside one hour** (about "
            f"{finish / 60:,.0f} min; Ray's own overhead, about 10 s per run in the tables "
            "above, does not change that). The driver's stages set the floor: more nodes "
            f"cannot bring the run under {driver / 60:,.0f} min.")
    if "neighbors" in model:
        per_pair = model["neighbors"]["b"] * JOB_THREADS  # core-s per (movie, movie) pair
        budget = NODE_CORES * WINDOW_S
        lines += ["", (
            f"Exact all-pairs top-k: {per_pair * 1e9:.1f} core-s per billion movie pairs, so "
            f"{model['neighbors']['core_s'] / 3600:,.1f} core-hours at "
            f"{TARGET_MOVIES / 1e6:.0f}M movies, four times that at each doubling. It fills one "
            f"{NODE_CORES}-core node-hour at **{np.sqrt(budget / per_pair) / 1e6:.1f}M "
            "movies** and ten nodes at "
            f"{np.sqrt(10 * budget / per_pair) / 1e6:.1f}M: past a few million titles the "
            "exact product stops being sensible, and the candidates have to come from an "
            "approximate index. `--engine ivf` is that route, with a caveat measured here.")]
    if ivf and "neighbors" in model:
        exact_ms = 1000 * model["neighbors"]["b"] * ivf["movies"] ** 2 / ivf["movies"]
        lines[-1] += (
            f" Its setting on the {ivf['movies']:,}-movie vectors of bench/ann.py below "
            f"({ivf['partitions']} partitions, nprobes {ivf['nprobes']}) has recall@{ivf['k']} "
            f"**>= {ivf['recall']:.3f}** and takes <= {ivf['ms']:.2f} ms per query movie "
            f"there, where the exact engine's fit gives {exact_ms:.2f} ms "
            f"({JOB_THREADS} threads both): scanning {ivf['nprobes'] / ivf['partitions']:.0%} "
            "of the vectors in LanceDB costs more than the exact engine's BLAS product of all "
            "of them. At a fixed share probed, IVF work still grows with movies², so `ivf` "
            "pays only on vectors that cluster well enough for a small share of partitions to "
            "reach recall 0.95; on these synthetic vectors none does (bench/ann.py's table), "
            "so measure the real catalog's vectors with bench/ann.py before choosing it.")
    return [*lines, ""]


def report(results: dict, command: str, speed: dict | None = None,
           ann: dict | None = None) -> str:
    lines = [
        f"Generated by `{command}`: do not edit by hand; change the script and rerun it. "
        f"Measured {results['started']} on {os.cpu_count()} cores, which both nodes share.",
        "",
        "Each run is `recs run` in a process of its own on a `recs synth` folder (seed 0): "
        "per size, serially and then with `--ray` against a two-node local cluster "
        "(`ray.cluster_utils.Cluster`, 1 CPU and a 300 MiB object store per node), back to "
        "back; the sizes measured for memory only run serially, before the cluster starts. "
        "With both nodes on the same cores this measures Ray's overhead, not a speed-up: the "
        "cluster's rank stage includes starting its worker processes and shipping the inputs. "
        "Peak RSS is the driver process's `ru_maxrss`.",
        "",
    ]
    for name, ray in results["cluster"].items():
        lines += cluster_section(name, results["serial"][name], ray, results["sizes"][name])
    sources = "this bench's" + (f" and bench/run.py's of {speed['started']}" if speed else "")
    sizes = stage_seconds(results, speed)
    scale = scale_section(sizes, time_model(sizes), ivf_recall(ann), sources)
    return "\n".join(lines + memory_section(results, model(results)) + scale)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = ",".join(SYNTHETIC)
    ap.add_argument("--sizes", default="1m", help=f"serial vs cluster at these ({sizes})")
    ap.add_argument("--rss-sizes", default="1m",
                    help="serial runs for the RSS fit (with --sizes' serial runs)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/recs-bench-data"))
    ap.add_argument("--doc", type=Path, help="write the section into this file (cluster.md)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--from", dest="source", type=Path,
                    help="no runs: report the results JSON of an earlier run (ray-latest.json)")
    ap.add_argument("--speed", type=Path, default=HERE / "results" / "latest.json",
                    help="bench/run.py's results JSON: more per-stage seconds for the time fit")
    ap.add_argument("--ann", type=Path, default=HERE / "results" / "ann-latest.json",
                    help="bench/ann.py's results JSON: the ivf engine's recall")
    args = ap.parse_args()
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.rss_sizes = [s for s in args.rss_sizes.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.source:
        results = json.loads(args.source.read_text())
    else:
        results = measure(args)
        results["command"] = shlex.join(["python", "bench/ray_bench.py", *sys.argv[1:]])
        (args.out / "ray-latest.json").write_text(json.dumps(results, indent=1))
    speed, ann = (json.loads(path.read_text()) if path.is_file() else None
                  for path in (args.speed, args.ann))
    text = report(results, results["command"], speed, ann)
    print(text)
    (args.out / "ray-latest.md").write_text(text)
    if args.doc:
        write_section(args.doc, "bench/ray_bench.py", "Benchmark and scale model", text)
    same = all(results["serial"][n]["hashes"] == r["hashes"]
               for n, r in results["cluster"].items())
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
