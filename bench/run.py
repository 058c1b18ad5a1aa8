"""Benchmark the nightly job against floors and the tutorial, measured in the same run.

    python bench/run.py [--sizes small,1m,5m,25m,25m-hard,25m-2x] [--out bench/results]

Writes docs/speed.md (`--doc`): SPEED below, then the tables it prints.

Every measurement is a separate process, timed by wall clock, its peak RSS taken from
os.wait4. The machine is noisy and shared, so the numbers that matter are the ratios between
measurements taken minutes apart in one run; anything that takes under --quick seconds is run
--repeat times and the fastest run is kept. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SMALL = Path("/work/shared/data/ml-latest-small")
IMPORTS = "import duckdb, numpy, scipy, lancedb, pyarrow, pydantic, click"
GIB = 2**30
DOC = REPO / "docs" / "speed.md"

SPEED = """\
`python bench/run.py --sizes small,1m,5m,25m,25m-hard,25m-2x` runs the whole nightly job
(`recs run`, fresh output and LanceDB folders) as its own process on each size, next to floors
measured in the same run. `small` is the real ml-latest-small; the other sizes are synthetic
folders from `recs/tools/synth.py` (seed 0) with rating times, so the close-watcher count runs
at every size. The machine is shared, so absolute seconds drift; read the ratios within one
run. Details and options: `bench/README.md`.

- **bare floor**: `python -c "import duckdb, numpy, scipy, lancedb, pyarrow, pydantic, click"`,
  interpreter start plus the job's imports, one after another. The job imports lancedb (most
  of this floor) on a thread while it reads and computes, so part of the floor overlaps work.
- **job wall s**, **job / bare floor**, **job peak RSS**: the job process from start to exit;
  peak RSS is `ru_maxrss` from `os.wait4`. **job k ratings/s**: input ratings per wall second.
- **read floor s**: DuckDB alone parsing every column of `ratings.csv` once; the job's read
  stage is shown as a multiple of it.
- **svd floor s**: the sparse products of the SVD alone (the weighted ratings matrix times
  blocks of 80 columns, as many passes as the job's randomized SVD); the embed stage's floor.
- **matmul floor s**: the raw all-pairs float32 product of unit vectors (movies x 64) times
  its transpose, no top-k; the job's top-k stage (`neighbors`) is shown as a multiple of it.
- **co-watch floor s**: the co-watchers of every (movie, pool candidate) pair by the cheapest
  exact count found (the re-rank's own lookups, without close watchers or scoring); the
  re-rank stage's floor.
- **files floor s**: as many files as the run published, of the same sizes, written by plain
  open, write, close on 2 threads (no JSON, no hashing); the write stage's floor.
- **tutorial s** (`small` only): the tutorial's way: dense pivot, full SVD, one LanceDB query
  per movie (`*`: a sample of queries timed and scaled to every movie).
- **Job stages**: seconds per stage from the run's `manifest.json`, as a multiple of the
  stage's floor where it has one; "wall − stages" is process start, imports, glue and the
  publish.

How cost grows: read, embed and re-rank follow the ratings; top-k follows movies²; writing
follows the number of lists and files. `25m-hard` is 25m's size in the shape of an unsorted
export (`recs synth --order random --times random --no-clusters`); `25m-2x` has twice the
movies. Measurements shorter than `--quick` are repeated and the fastest kept.

**Budgets**: the seconds each stage may take for the whole run to meet its target, next to
the stage's floor from the same run: at 25M ratings they add up to 30 s (the same budget for
`25m-hard`), on `small` to 1.5x the bare floor (start and imports keep 1x, the stages share
the rest). A stage over budget is where the target is missed.
"""

# the options of `recs synth` that take the locality away: an unsorted warehouse export
HARDER = {"order": "random", "times": "random", "clusters": False}
# name -> (users, movies, ratings, write_synthetic options) of a synthetic folder; "small" is
# the real ml-latest-small
SYNTHETIC = {
    "1m": (6_500, 12_500, 1_000_000, {}),
    "1m-hard": (6_500, 12_500, 1_000_000, HARDER),
    "5m": (32_500, 28_000, 5_000_000, {}),
    "25m": (162_000, 62_000, 25_000_000, {}),
    "25m-hard": (162_000, 62_000, 25_000_000, HARDER),
    "25m-2x": (162_000, 125_000, 25_000_000, {}),  # twice the movies: the movies² stages
}
# stage names in the job's manifest that are compared with a floor (first match wins)
TOPK_STAGE = re.compile(r"top.?k|neighbo|knn|similar", re.IGNORECASE)

# seconds per stage (manifest names; "start" is wall − stages: process start, imports, glue
# and the publish) for a 30 s run at 25M ratings; for sizes not named here, no budget
BUDGET_25M = {
    "start": 2.5, "fetch": 0.1, "read": 5.0, "embed": 4.0, "prepare": 1.5, "neighbors": 7.0,
    "rerank": 4.0, "quality": 0.2, "write": 5.0, "lancedb": 0.7,
}
# shares of the bare floor per stage for a run of 1.5x the bare floor on ml-latest-small
BUDGET_SMALL = {
    "start": 1.0, "fetch": 0.01, "read": 0.06, "embed": 0.06, "prepare": 0.01,
    "neighbors": 0.1, "rerank": 0.08, "quality": 0.01, "write": 0.15, "lancedb": 0.02,
}
# each stage's floor (a key of the size's row) and how the report names it
STAGE_FLOOR = {
    "start": ("bare_floor", "start + imports"), "read": ("read_floor", "CSV parse"),
    "embed": ("svd_floor", "SVD products"), "neighbors": ("matmul_floor", "all-pairs product"),
    "rerank": ("co_watch_floor", "co-watch count"), "write": ("files_floor", "files alone"),
}

TARGETS = {
    "small_vs_floor": 1.5,  # whole job on ml-latest-small <= 1.5 x bare process start + imports
    "small_vs_tutorial": 25.0,  # tutorial / whole job >= 25
    "25m_wall_s": 30.0,
    "25m_peak_rss": 2 * GIB,
    "topk_vs_matmul": 1.5,  # top-k stage <= 1.5 x the raw all-pairs product
}


@dataclass
class Measured:
    """One process: wall seconds, peak RSS bytes, exit code, and its JSON answer if any."""

    wall: float
    peak_rss: int
    returncode: int
    answer: dict = field(default_factory=dict)
    runs: int = 1


def run_process(cmd: list[str], log: Path) -> Measured:
    """Run `cmd`, stdout and stderr to `log`(.out/.err), and measure it with os.wait4."""
    with open(f"{log}.out", "wb") as out, open(f"{log}.err", "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    answer: dict = {}
    text = Path(f"{log}.out").read_text(errors="replace").strip().splitlines()
    if proc.returncode == 0 and text and text[-1].startswith("{"):
        answer = json.loads(text[-1])
    return Measured(wall, usage.ru_maxrss * 1024, proc.returncode, answer)


def best_of(cmd: list[str], log: Path, repeat: int, quick: float) -> Measured:
    """The fastest of up to `repeat` runs; runs longer than `quick` seconds are not repeated."""
    best = run_process(cmd, log)
    runs = 1
    while runs < repeat and best.returncode == 0 and best.wall < quick:
        again = run_process(cmd, log)
        runs += 1
        if again.returncode == 0 and again.wall < best.wall:
            best = again
    best.runs = runs
    return best


def must(measured: Measured, what: str, log: Path) -> Measured:
    if measured.returncode != 0:
        err = Path(f"{log}.err").read_text(errors="replace").strip().splitlines()[-5:]
        sys.exit(f"bench: {what} failed with exit {measured.returncode}:\n" + "\n".join(err))
    return measured


def dataset(name: str, cache: Path) -> Path:
    """The folder of size `name`: ml-latest-small itself, or a synthetic folder generated once
    into `cache` and reused while its parameters match."""
    if name == "small":
        return SMALL
    users, movies, ratings, options = SYNTHETIC[name]
    folder = cache / f"{name}-seed0"
    marker = folder / "synth.json"
    # a change to the generator's code makes other data: regenerate then
    code = hashlib.sha256((REPO / "recs" / "tools" / "synth.py").read_bytes()).hexdigest()[:16]
    wanted = {"users": users, "movies": movies, "ratings": ratings, "seed": 0, **options,
              "code": code}
    if marker.exists():
        done = json.loads(marker.read_text())
        if {key: done.get(key) for key in wanted} == wanted:
            return folder
    sys.path.insert(0, str(REPO))
    from recs.tools.synth import write_synthetic

    print(f"bench: generating {name} ({ratings:,} ratings) into {folder} ...", flush=True)
    marker.unlink(missing_ok=True)
    info = write_synthetic(folder, users, movies, ratings, seed=0, **options)
    marker.write_text(json.dumps(info | {"code": code}))
    print(f"bench: generated in {info['seconds']:.1f} s", flush=True)
    return folder


def recs_command(arg: str | None) -> list[str] | None:
    """The `recs` entry point to run, or None when `recs run` is not there yet."""
    cmd = shlex.split(arg) if arg else [str(Path(sys.executable).with_name("recs"))]
    try:
        probe = subprocess.run(
            [*cmd, "run", "--help"], capture_output=True, timeout=120, cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cmd if probe.returncode == 0 else None


def run_job(recs: list[str], folder: Path, work: Path, extra: list[str], log: Path,
            repeat: int, quick: float) -> dict:
    """The whole nightly job as a subprocess; its manifest's stage seconds and peak RSS."""
    out, db = work / "out", work / "db"
    cmd = [*recs, "run", "--data", str(folder), "--out", str(out), "--db", str(db), *extra]
    measured = must(best_of(cmd, log, repeat, quick), f"recs run on {folder}", log)
    manifest_path = out / "latest" / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return {
        "wall": measured.wall, "peak_rss": measured.peak_rss, "runs": measured.runs,
        "stages": manifest.get("stages", {}),
        "manifest_peak_rss": manifest.get("peak_rss_bytes"),
    }


def first_stage(stages: dict, pattern: re.Pattern) -> tuple[str, float] | None:
    for name, seconds in stages.items():
        if pattern.search(name):
            return name, float(seconds)
    return None


def scratch() -> str:
    """Where the runs write (tempfile's folder: set TMPDIR) and its file system type."""
    folder = Path(tempfile.gettempdir()).resolve()
    mounts = Path("/proc/mounts")
    best = ("", "?")
    for line in mounts.read_text().splitlines() if mounts.exists() else []:
        _, point, kind, *_ = line.split()
        if folder.is_relative_to(point) and len(point) >= len(best[0]):
            best = (point, kind)
    return f"{folder} ({best[1]})"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def measure(args: argparse.Namespace) -> dict:
    python = sys.executable
    recs = None if args.no_job else recs_command(args.recs)
    results: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sizes": {}, "job_available": bool(recs),
        "scratch": scratch(),
        "python": python, "repeat": args.repeat, "env": {
            key: os.environ[key] for key in sorted(os.environ)
            if key.startswith(("OPENBLAS", "OMP_", "MKL_", "RECS_"))
        },
    }
    if recs is None:
        print("bench: `recs run` is not available: measuring the floors only", flush=True)
    with tempfile.TemporaryDirectory(prefix="recs-bench-") as tmp:
        logs = Path(tmp)
        log = logs / "imports"
        bare = must(best_of([python, "-c", IMPORTS], log, args.repeat, args.quick), "imports", log)
        results["bare_floor"] = asdict(bare)
        print(f"bench: bare floor (start + imports) {bare.wall:.2f} s", flush=True)
        for name in args.sizes:
            results["sizes"][name] = measure_size(name, args, recs, logs)
            print(f"bench: {name} done", flush=True)
    results["checks"] = checks(results)
    return results


def measure_size(name: str, args: argparse.Namespace, recs: list[str] | None, logs: Path) -> dict:
    """One size: its floors, the job (when `recs` runs), the files floor on the job's output,
    and on `small` the tutorial."""
    floors = [sys.executable, str(HERE / "floors.py")]
    folder = dataset(name, args.cache)

    def floor(what: str, *arguments: str) -> dict:
        log = logs / f"{what}-{name}"
        return asdict(must(best_of([*floors, what, *arguments], log, args.repeat, args.quick),
                           f"{what} floor", log))

    row: dict = {"folder": str(folder)}
    row["read_floor"] = floor("read-csv", str(folder / "ratings.csv"))
    row.update({key: row["read_floor"]["answer"][key] for key in ("ratings", "movies", "users")})
    row["matmul_floor"] = floor("matmul", str(row["movies"]))
    row["products"] = floor("products", str(folder))
    if recs is not None:
        work = logs / f"job-{name}"
        work.mkdir()
        row["job"] = run_job(recs, folder, work, shlex.split(args.job_args), work, args.repeat,
                             args.quick)
        manifest = work / "out" / "latest" / "manifest.json"
        if manifest.exists():  # the same file system as the job's output
            row["files_floor"] = floor("files", str(manifest), str(work))
    if name == "small" and not args.no_tutorial:
        cmd = [*floors, "tutorial", str(folder)]
        if args.tutorial_queries:
            cmd += ["--queries", str(args.tutorial_queries)]
        log = logs / "tutorial"
        row["tutorial"] = asdict(must(run_process(cmd, log), "tutorial", log))
    return row


def floor_seconds(results: dict, row: dict, key: str) -> float | None:
    """A floor of STAGE_FLOOR in seconds, or None when it was not measured."""
    if key == "bare_floor":
        return results["bare_floor"]["wall"]
    if key in ("svd_floor", "co_watch_floor"):
        products = row.get("products")
        return products and products["answer"][key.replace("_floor", "_seconds")]
    found = row.get(key)
    return found and found["answer"]["seconds"]


def budget(results: dict, name: str) -> dict[str, float] | None:
    """Seconds per stage for size `name` to meet its target, or None (no target)."""
    if name in ("25m", "25m-hard"):
        return BUDGET_25M
    if name == "small":
        return {stage: share * results["bare_floor"]["wall"] for stage, share in
                BUDGET_SMALL.items()}
    return None


def stage_seconds(job: dict) -> dict[str, float]:
    """The manifest's stages and "start" (wall − stages), seconds."""
    stages = {stage: float(seconds) for stage, seconds in job["stages"].items()}
    return {"start": job["wall"] - sum(stages.values()), **stages}


def checks(results: dict) -> list[dict]:
    """Each target with the measured value and PASS / FAIL / n/a."""
    bare = results["bare_floor"]["wall"]
    out = []
    small = results["sizes"].get("small", {})
    job = small.get("job")
    if "small" in results["sizes"]:
        ratio = job["wall"] / bare if job else None
        out.append({"target": "small: whole run <= 1.5x bare floor", "value": ratio,
                    "unit": "x", "ok": None if ratio is None else
                    ratio <= TARGETS["small_vs_floor"]})
        tut = small.get("tutorial")
        speedup = tut["answer"]["seconds"] / job["wall"] if (job and tut) else None
        out.append({"target": "small: >= 25x faster than tutorial", "value": speedup,
                    "unit": "x", "ok": None if speedup is None else
                    speedup >= TARGETS["small_vs_tutorial"]})
    for name in ("25m", "25m-hard"):
        if name not in results["sizes"]:
            continue
        job25 = results["sizes"][name].get("job")
        out.append({"target": f"{name}: whole run <= 30 s", "value": job25 and job25["wall"],
                    "unit": "s", "ok": None if not job25 else
                    job25["wall"] <= TARGETS["25m_wall_s"]})
        out.append({"target": f"{name}: peak RSS <= 2 GiB",
                    "value": job25 and job25["peak_rss"] / GIB, "unit": "GiB",
                    "ok": None if not job25 else job25["peak_rss"] <= TARGETS["25m_peak_rss"]})
    for name, row in results["sizes"].items():
        stage = first_stage(row.get("job", {}).get("stages", {}), TOPK_STAGE)
        ratio = stage[1] / row["matmul_floor"]["answer"]["seconds"] if stage else None
        out.append({"target": f"{name}: top-k stage <= 1.5x matmul floor", "value": ratio,
                    "unit": "x", "ok": None if ratio is None else
                    ratio <= TARGETS["topk_vs_matmul"]})
    return out


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def report(results: dict) -> str:
    """The results as markdown tables."""
    bare = results["bare_floor"]
    lines = [
        f"# recs benchmark {results['started']}",
        "",
        f"bare floor (`python -c \"{IMPORTS}\"`): {bare['wall']:.2f} s, "
        f"peak RSS {bare['peak_rss'] / 2**20:.0f} MiB (best of {bare['runs']})",
        "",
        "## Whole job and floors per size",
        "",
        "| size | ratings | users | movies | job wall s | job / bare floor | job peak RSS MiB "
        "| job k ratings/s | read floor s | svd floor s | matmul floor s | co-watch floor s "
        "| files floor s | tutorial s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results["sizes"].items():
        job = row.get("job")
        tut = row.get("tutorial")
        tut_mark = "*" if tut and tut["answer"].get("extrapolated") else ""
        floors = " | ".join(fmt(floor_seconds(results, row, key)) for key in (
            "read_floor", "svd_floor", "matmul_floor", "co_watch_floor", "files_floor"))
        lines.append(
            f"| {name} | {row['ratings']:,} | {row['users']:,} | {row['movies']:,} "
            f"| {fmt(job and job['wall'])} | {fmt(job and job['wall'] / bare['wall'], 'x')} "
            f"| {fmt(job and job['peak_rss'] / 2**20, '', 0)} "
            f"| {fmt(job and row['ratings'] / job['wall'] / 1e3, '', 0)} | {floors} "
            f"| {fmt(tut and tut['answer']['seconds'], tut_mark, 1)} |"
        )
    lines += ["", "## Job stages (seconds from the manifest)", ""]
    lines += ["| size | stage | seconds | share of job | k ratings/s | vs floor |",
              "|---|---|---:|---:|---:|---:|"]
    for name, row in results["sizes"].items():
        job = row.get("job")
        if not job:
            continue
        for stage, seconds in job["stages"].items():
            seconds = float(seconds)
            key, what = STAGE_FLOOR.get(stage, (None, ""))
            least = floor_seconds(results, row, key) if key else None
            floor = fmt(seconds / least, f"x {what}") if least else ""
            rate = row["ratings"] / seconds / 1e3 if seconds >= 0.01 else None
            lines.append(f"| {name} | {stage} | {seconds:.3f} | {seconds / job['wall']:.0%} "
                         f"| {fmt(rate, '', 0)} | {floor} |")
        rest = job["wall"] - sum(float(v) for v in job["stages"].values())
        lines.append(f"| {name} | (wall − stages: start, imports, glue, publish) | {rest:.3f} "
                     f"| {rest / job['wall']:.0%} | | |")
        if job.get("manifest_peak_rss"):
            lines.append(f"| {name} | (manifest peak RSS) | "
                         f"{job['manifest_peak_rss'] / 2**20:.0f} MiB | | | |")
    for name, row in results["sizes"].items():
        tut = row.get("tutorial")
        if tut:
            a = tut["answer"]
            stages = ", ".join(f"{k} {v:.2f} s" for k, v in a["stages"].items())
            note = (f" (queries: {a['queries_run']} of {a['movies']} run, scaled up)"
                    if a["extrapolated"] else "")
            lines += ["", f"tutorial on {name}: {stages}; one query p50 {a['query_p50_ms']:.1f} "
                      f"ms{note}; peak RSS {tut['peak_rss'] / 2**20:.0f} MiB"]
    lines += budget_lines(results)
    lines += ["", "## Targets", "", "| target | measured | verdict |", "|---|---:|---|"]
    for check in results["checks"]:
        lines.append(f"| {check['target']} | {fmt(check['value'], ' ' + check['unit'])} "
                     f"| {verdict(check['ok'])} |")
    if not results["job_available"]:
        lines += ["", "`recs run` was not available: job columns are empty."]
    return "\n".join(lines) + "\n"


def budget_lines(results: dict) -> list[str]:
    """The "Budgets" section: per size with a target, each stage's floor, budget and seconds."""
    lines = ["", "## Budgets (seconds; floors measured in the same run)", "",
             "| size | stage | floor | floor s | budget s | measured s | measured / budget |",
             "|---|---|---|---:|---:|---:|---:|"]
    for name, row in results["sizes"].items():
        allowed, job = budget(results, name), row.get("job")
        if allowed is None or not job:
            continue
        measured = stage_seconds(job)
        for stage in {**allowed, **measured}:  # budgeted stages first, then any other
            key, what = STAGE_FLOOR.get(stage, (None, ""))
            least = floor_seconds(results, row, key) if key else None
            spent, cap = measured.get(stage, 0.0), allowed.get(stage, 0.0)
            label = "start, imports, glue, publish" if stage == "start" else stage
            lines.append(f"| {name} | {label} | {what} | {fmt(least)} | {cap:.2f} | "
                         f"{spent:.2f} | {fmt(spent / cap if cap else None, 'x')} |")
        total = sum(allowed.values())
        lines.append(f"| {name} | **whole run** | | | {total:.2f} | {job['wall']:.2f} | "
                     f"{job['wall'] / total:.2f}x |")
    return lines if len(lines) > 5 else []


def doc(results: dict, argv: list[str], text: str) -> str:
    """docs/speed.md: a generated-file header, SPEED, then the report's tables."""
    command = " ".join(["python bench/run.py", *map(shlex.quote, argv)])
    body = text.split("\n", 1)[1]  # the report without its title line
    return (
        "# Speed\n\n"
        "Generated by `python bench/run.py`: do not edit by hand; change the script and rerun "
        "it.\n\n" + SPEED + "\n"
        f"Measured {results['started']} with `{command}` on {os.cpu_count()} cores; output "
        f"written under {results.get('scratch', '?')}.\n" + body
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark `recs run` against its floors.")
    parser.add_argument("--sizes", default="small,1m",
                        help=f"comma-separated: small,{','.join(SYNTHETIC)} (default: small,1m)")
    parser.add_argument("--out", type=Path, default=HERE / "results",
                        help="folder for the markdown and JSON results")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/recs-bench-data"),
                        help="where synthetic folders are generated once and reused")
    parser.add_argument("--recs", default=None,
                        help="command that runs the CLI (default: the `recs` beside this python)")
    parser.add_argument("--job-args", default="", help="extra arguments for `recs run`")
    parser.add_argument("--no-job", action="store_true", help="measure the floors only")
    parser.add_argument("--no-tutorial", action="store_true", help="skip the tutorial baseline")
    parser.add_argument("--tutorial-queries", type=int, default=500,
                        help="LanceDB queries the tutorial runs, scaled up to every movie; "
                             "0 runs one per movie (minutes)")
    parser.add_argument("--doc", type=Path, default=DOC,
                        help="markdown page to write (default: docs/speed.md)")
    parser.add_argument("--no-doc", action="store_true", help="do not write --doc")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each quick measurement; the fastest is kept")
    parser.add_argument("--quick", type=float, default=5.0,
                        help="measurements shorter than this many seconds are repeated")
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in args.sizes if s != "small" and s not in SYNTHETIC]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from small, {', '.join(SYNTHETIC)}")

    started = time.perf_counter()
    results = measure(args)
    results["bench_seconds"] = time.perf_counter() - started
    text = report(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (args.out / f"bench-{stamp}", args.out / "latest"):
        path.with_suffix(".md").write_text(text)
        path.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_doc:
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(doc(results, sys.argv[1:] if argv is None else argv, text))
    print(f"bench: {results['bench_seconds']:.0f} s; results in {args.out}/latest.md and .json")


if __name__ == "__main__":
    main()
