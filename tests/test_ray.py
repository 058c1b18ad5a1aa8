"""`recs run --ray`: the same bytes and the same LanceDB rows as the serial run on a two-node
Ray cluster, through a killed worker and a lost node; an unreachable address fails at once
with exit 2; a SIGKILLed `--ray local` driver leaves no process of its throwaway cluster behind.

The cluster (`ray.cluster_utils.Cluster`, two nodes of 1 CPU, no dashboard, a small object
store, RAY_TMPDIR and a token file of its own under the session's tmp dir) runs in a helper
process of its own session, so teardown ends that process group and nothing else: never
`ray stop`, which kills every Ray process on the host. Jobs connect by explicit address.
Skipped only when `ray` is not importable (`pip install '.[ray]'`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lancedb
import pytest
from jobtools import TIMEOUT_S, Job, content_hashes, verify_run

from recs.core.settings import Settings
from recs.jobs import nightly
from recs.stages import store
from recs.tools.synth import write_synthetic

pytest.importorskip("ray", reason="the `ray` extra is not installed: pip install '.[ray]'")

pytestmark = pytest.mark.slow

STORE_BYTES = 150 * 1024**2  # object store per node: the inputs here are a few MB
CLUSTER = r"""
import json, sys
from ray.cluster_utils import Cluster
store = int(sys.argv[1])
node = {"num_cpus": 1, "object_store_memory": store, "node_ip_address": "127.0.0.1"}
cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
worker = cluster.add_node(**node)
cluster.wait_for_nodes()
print(json.dumps({"address": cluster.address}), flush=True)
for line in sys.stdin:
    if line.strip() == "remove":
        cluster.remove_node(worker, allow_graceful=False)
    elif line.strip() == "add":
        worker = cluster.add_node(**node)
        cluster.wait_for_nodes()
    print("ok", flush=True)
cluster.shutdown()
"""


def ray_env(root: Path) -> dict[str, str]:
    """Ray's files under `root/t` and a token of its own: nothing in ~/.ray or /tmp/ray."""
    tmp = root / "t"  # Unix socket paths under it must stay below ~107 bytes
    tmp.mkdir()
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {"RAY_TMPDIR": str(tmp), "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0",
            # keep 127.0.0.1 as is: Ray otherwise swaps it for the host's own address
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class RayCluster:
    """The helper process holding the cluster: `address`, and `remove`/`add` its worker."""

    def __init__(self, root: Path) -> None:
        self.env = ray_env(root)
        for name in ("RAY_ADDRESS",):
            os.environ.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLUSTER, str(STORE_BYTES)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=(root / "cluster.log").open("w"), text=True,
            env={**os.environ, **self.env}, start_new_session=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the test cluster did not start: {(root / 'cluster.log')}")
        self.address = json.loads(line)["address"]
        self.nodes = 2

    def _say(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def remove_worker(self) -> None:
        self._say("remove")
        self.nodes = 1

    def ensure_two_nodes(self) -> None:
        if self.nodes < 2:
            self._say("add")
            self.nodes = 2

    def stop(self) -> None:
        try:
            self.proc.stdin.close()  # the helper shuts the cluster down
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):  # whatever is left of its session
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(1)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = RayCluster(tmp_path_factory.mktemp("ray"))
    yield cluster
    cluster.stop()


def cluster_job(cluster: RayCluster, args: list[str], prelude: str | None = None) -> Job:
    """`recs run ARGS --ray ADDRESS` in a subprocess with the cluster's environment."""
    saved = dict(os.environ)
    os.environ.update(cluster.env)
    try:
        return Job([*args, "--ray", cluster.address], prelude)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_args(data: Path, root: Path, *extra: str) -> list[str]:
    return ["run", "--data", str(data), "--out", str(root / "out"), "--db", str(root / "db"),
            "--cache", str(root / "cache"), *extra]


@dataclass(frozen=True)
class Published:
    """What a run published: sha256 per file (bar the two that name the run), and its LanceDB
    table read back through the `Content` model, one row per movie in movie_id order."""

    files: dict[str, str]
    rows: list[dict[str, Any]]


def table_rows(db: str, name: str, dim: int) -> list[dict[str, Any]]:
    """Every row of table `name` read as a `Content` model, then as its fields (ids, the
    float32 vectors as floats, metadata): two runs' models are of two classes, never equal."""
    table = lancedb.connect(db).open_table(name)
    rows = table.search().limit(table.count_rows()).to_pydantic(store.content_model(dim))
    return sorted((row.model_dump() for row in rows), key=lambda row: row["movie_id"])


def published(run_dir: Path) -> Published:
    """The files of `run_dir` (checked against its manifest) and the table it names."""
    manifest = verify_run(run_dir)
    lance = manifest["lancedb"]
    return Published(content_hashes(manifest),
                     table_rows(lance["db"], lance["table"], manifest["settings"]["dim"]))


def assert_same(got: Published, want: Published) -> None:
    assert got.files == want.files
    assert len(got.rows) == len(want.rows) > 0
    assert got.rows == want.rows  # same movies, metadata and float32 vector bits


def serial(data: Path, root: Path, **settings) -> Published:
    result = nightly.run(Settings(data=str(data), out=root / "out", db=root / "db",
                                  cache=root / "cache", **settings))
    return published(result.run_dir)


def finished(job: Job, root: Path) -> Published:
    code = job.finish()
    assert code == 0, job.text()
    return published(root / "out" / "latest")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic set large enough for several shards (each shard >= 256 query movies)."""
    folder = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic(folder, users=400, movies=1500, ratings=40_000, seed=3)
    return folder


@pytest.fixture(scope="module")
def synth_serial(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return serial(synth, tmp_path_factory.mktemp("synth_serial"), dim=16)


def test_tiny_dataset_same_bytes(ray_cluster, make_dataset, tmp_path: Path) -> None:
    data = make_dataset()
    want = serial(data, tmp_path / "serial", dim=2, top_k=3)
    job = cluster_job(ray_cluster, run_args(data, tmp_path / "ray", "--dim", "2",
                                            "--top-k", "3"))
    assert_same(finished(job, tmp_path / "ray"), want)


def test_ml_latest_small_same_bytes(ray_cluster, small_run, ml_small, tmp_path: Path) -> None:
    job = cluster_job(ray_cluster, run_args(ml_small, tmp_path))
    assert_same(finished(job, tmp_path), published(small_run[1].run_dir))
    assert "2 CPUs on 2 nodes" in job.text() and "shards 8/8 ranked" in job.text()
    assert "shards 8/8 written" in job.text()  # the movie JSON was written by the tasks


def _patch_ranges(body: str, task: str = "rank_range", after: str = "") -> str:
    """A prelude that wraps every `task` range in `body` before it and `after` it (runs in the
    Ray worker: a function defined here, in __main__, travels by value)."""
    return (
        "import os, signal, time\n"
        "import recs.jobs.shards as _shards\n"
        f"_orig_{task} = _shards.{task}\n"
        f"def _wrapped_{task}(shared, start, stop, _orig=_orig_{task}):\n"
        f"{body}"
        "    result = _orig(shared, start, stop)\n"
        f"{after}"
        "    return result\n"
        f"_shards.{task} = _wrapped_{task}\n"
    )


def _kill_once(marker: Path) -> str:
    """Worker code: the first task to get here (across the cluster) SIGKILLs its process."""
    return (
        "    try:\n"
        f"        os.close(os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL))\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    except FileExistsError:\n"
        "        pass\n"
    )


def test_worker_killed_mid_task_is_retried(ray_cluster, synth, synth_serial,
                                           tmp_path: Path) -> None:
    """One worker killed mid-rank, another after writing its range's files (the retry finds
    them on disk): both retried, same bytes."""
    ranked, wrote = tmp_path / "killed-ranking", tmp_path / "killed-writing"
    prelude = (_patch_ranges(_kill_once(ranked))
               + _patch_ranges("", "write_range", after=_kill_once(wrote)))
    ray_cluster.ensure_two_nodes()
    job = cluster_job(ray_cluster, run_args(synth, tmp_path, "--dim", "16"), prelude)
    # also: serial vs cluster on synthetic data
    assert_same(finished(job, tmp_path), synth_serial)
    assert ranked.exists() and wrote.exists()  # a worker did die in each
    shards = int(re.search(r"in (\d+) shards", job.text()).group(1))
    assert 2 <= shards <= 8  # 1500 movies: as many 256-movie ranges as fit, at most 4 per CPU


def test_node_removed_mid_run(ray_cluster, synth, synth_serial, tmp_path: Path) -> None:
    """Identical output, or one line, exit 6 and nothing published."""
    ray_cluster.ensure_two_nodes()
    prelude = _patch_ranges("    time.sleep(1)\n")  # slow ranges: the node goes mid-run
    job = cluster_job(ray_cluster, run_args(synth, tmp_path, "--dim", "16"), prelude)
    job.wait_for("shards 1/")
    ray_cluster.remove_worker()
    code = job.finish()
    print(f"node removed mid-run: exit {code}")  # either outcome is allowed; -s shows which
    if code == 0:
        assert_same(published(tmp_path / "out" / "latest"), synth_serial)
    else:
        assert code == 6, job.text()
        last = job.text().strip().splitlines()[-1]
        assert last.startswith("Error: the Ray cluster at") and "lost" in last, last
        assert not (tmp_path / "out" / "latest").exists()
        assert not (tmp_path / "db").exists() or not lancedb.connect(
            str(tmp_path / "db")).list_tables().tables
    ray_cluster.ensure_two_nodes()


LEFTOVER_DEADLINE_S = 30.0  # unwatched, Ray's own agents outlived a killed driver by 60-90 s


def processes_with(marker: str) -> list[str]:
    """'PID COMMAND' of every live process (zombies aside) whose environment holds `marker`:
    with a RAY_TMPDIR of the test's own, exactly what one job started, and the job."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
            # the program's own name, not a cut of its path: venv paths can be long (CI's)
            argv0, _, rest = (entry / "cmdline").read_bytes().partition(b"\0")
            command = (argv0.rsplit(b"/", 1)[-1] + b" " + rest.replace(b"\0", b" "))[:80]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker.encode() in environ and stat[stat.rindex(")") + 2] != "Z":
            found.append(f"{entry.name} {command.decode(errors='replace').strip()}")
    return found


def left_after(marker: str, deadline_s: float) -> list[str]:
    """The processes still carrying `marker` once they are all gone or `deadline_s` passed."""
    deadline = time.monotonic() + deadline_s
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_killed_driver_leaves_no_local_cluster(synth, synth_serial, monkeypatch,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    """`--ray local`, driver SIGKILLed while writing: no process it started (GCS, raylet,
    agents, workers, watchdog) outlives it, the next run cleans up and publishes the serial
    bytes, and after that run's exit nothing it started is left either."""
    root = tmp_path_factory.mktemp("rl")  # short: Ray's socket paths go under it
    for name, value in ray_env(root).items():
        monkeypatch.setenv(name, value)
    marker = f"RAY_TMPDIR={root / 't'}"
    args = run_args(synth, root, "--dim", "16", "--ray", "local")
    slow_writes = _patch_ranges("    time.sleep(1)\n", "write_range")  # killed mid-write
    job = Job(args, slow_writes)
    job.wait_for(" written")
    running = processes_with(marker)
    assert any("raylet" in p for p in running) and any("gcs_server" in p for p in running)
    assert job.kill() == -signal.SIGKILL
    assert list((root / "out" / "runs").glob(".partial-*"))  # it died holding a staged run
    left = left_after(marker, LEFTOVER_DEADLINE_S)
    assert not left, f"{len(left)} of the {len(running)} processes outlived the driver: {left}"

    again = Job(args)
    assert_same(finished(again, root), synth_serial)
    assert "left behind by a run that died" in again.text()
    assert not list((root / "out" / "runs").glob(".partial-*"))
    assert not processes_with(marker), "a normal --ray local run left processes behind"


def test_unreachable_address_fails_at_once(tmp_path: Path) -> None:
    job = Job([*run_args(tmp_path / "no-data", tmp_path), "--ray", "127.0.0.1:9"])
    started = time.perf_counter()
    assert job.finish(TIMEOUT_S) == 2
    assert time.perf_counter() - started < 60
    errors = [line for line in job.log if line.startswith("Error:")]
    assert len(errors) == 1 and "'127.0.0.1:9'" in errors[0], job.text()
    assert not (tmp_path / "out").exists() and not (tmp_path / "db").exists()
