"""Crash safety: `recs run` killed with SIGKILL anywhere leaves readers a complete output.

Each case starts from a published run of dataset A (output folder + LanceDB table), runs the
CLI on dataset B as a real process and SIGKILLs it at one point: right after a stage's log
line, a delay into a stage, or exactly at a function boundary (the child patches that function
to kill itself; production code has no test hooks). Then:
- `latest` is run A or a complete run of B (every manifest file, size and sha256) and every
  folder under runs/ without a dot is a complete run;
- the LanceDB table opens, answers a vector search, and holds exactly A's or B's vectors;
- the next run succeeds, publishes B, and leaves no .partial-*, .deleting-* or .latest-*.
A and B are different synthetic datasets, so "A or B" can be told apart byte for byte.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import fake_run
from jobtools import (
    TABLE,
    Job,
    cli_args,
    content_hashes,
    embeddings_snapshot,
    table_snapshot,
    verify_run,
)

from recs.core.settings import Settings
from recs.jobs import nightly
from recs.stages import publish
from recs.tools.synth import write_synthetic

pytestmark = pytest.mark.slow  # real processes, SIGKILLed

# the child kills itself: nothing after this line runs, no finally, no atexit
DIE = "import os, signal\ndef _die(*a, **k):\n    os.kill(os.getpid(), signal.SIGKILL)\n"


def _kill_at_replace_of(name: str) -> str:
    return DIE + (
        "_replace = os.replace\n"
        "def _patched(src, dst, *a, **k):\n"
        f"    if os.path.basename(dst) == {name!r}:\n"
        "        _die()\n"
        "    return _replace(src, dst, *a, **k)\n"
        "os.replace = _patched\n"
    )


AT_PUBLISH = DIE + "import recs.stages.publish\nrecs.stages.publish.publish = _die\n"
AT_LATEST_SWITCH = _kill_at_replace_of("latest")
AT_HISTORY_SWITCH = _kill_at_replace_of("recommendations.parquet")
IN_LANCEDB_WRITE = DIE + (
    "import threading, recs.stages.store\n"
    "_write = recs.stages.store.write_table\n"
    "def _patched(*a, **k):\n"
    "    threading.Timer(0.01, _die).start()\n"
    "    return _write(*a, **k)\n"
    "recs.stages.store.write_table = _patched\n"
)
# prune's rmtree of an old run gets halfway, then the process dies
MID_PRUNE = DIE + (
    "import shutil\nfrom pathlib import Path\n"
    "_rmtree = shutil.rmtree\n"
    "def _patched(path, *a, **k):\n"
    "    if Path(path).parent.name != 'runs':\n"
    "        return _rmtree(path, *a, **k)\n"
    "    files = sorted(p for p in Path(path).rglob('*') if p.is_file())\n"
    "    for f in files[: len(files) // 2]:\n"
    "        f.unlink()\n"
    "    _die()\n"
    "shutil.rmtree = _patched\n"
)


@dataclass(frozen=True)
class Point:
    """Where to kill: after a log line (+ delay), or where a prelude makes the child die.
    `latest`/`lance`: the state the kill must leave when it is certain ("A" or "B")."""

    name: str
    after: str | None = None
    delay: float = 0.0
    prelude: str | None = None
    latest: str | None = None
    lance: str | None = None
    may_finish: bool = False  # a kill racing the job's last steps may find it done


POINTS = [
    Point("reading", after="recs.stages.source:"),
    Point("mid-neighbors", after="recs.stages.embed:", delay=0.1),
    Point("mid-json-write", after="recs.stages.neighbors:", delay=0.25),
    Point("mid-lancedb-write", prelude=IN_LANCEDB_WRITE, may_finish=True),
    Point("after-lancedb-write", after="recs.stages.store:"),
    Point("at-publish", prelude=AT_PUBLISH, latest="A", lance="B"),
    Point("at-latest-switch", prelude=AT_LATEST_SWITCH, latest="A", lance="B"),
    Point("at-history-switch", prelude=AT_HISTORY_SWITCH, latest="B", lance="B"),
    Point("mid-prune", prelude=MID_PRUNE, latest="B", lance="B"),
]


@dataclass(frozen=True)
class Reference:
    """A published run's content hashes and vectors, to recognise it elsewhere."""

    hashes: dict[str, str]
    ids: np.ndarray
    vectors: np.ndarray


@dataclass(frozen=True)
class World:
    data: dict[str, Path]  # "A", "B" -> dataset folder
    refs: dict[str, Reference]
    template: Path  # holds out/ and db/ after one published run of A


def settings_for(data: Path, root: Path, keep: int = 1) -> Settings:
    return Settings(data=str(data), out=root / "out", db=root / "db", table=TABLE,
                    cache=root / "cache", dim=16, top_k=10, keep=keep, engine="exact",
                    threads=2, precompress=False)


def reference(result: nightly.RunResult) -> Reference:
    ids, vectors = embeddings_snapshot(result.run_dir)
    return Reference(content_hashes(verify_run(result.run_dir)), ids, vectors)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("crash")
    data = {}
    for name, seed in (("A", 1), ("B", 2)):
        data[name] = root / f"data{name}"
        write_synthetic(data[name], users=300, movies=2000, ratings=20_000, seed=seed)
    refs = {name: reference(nightly.run(settings_for(data[name], root / f"ref{name}")))
            for name in data}
    assert refs["A"].hashes != refs["B"].hashes
    return World(data, refs, template=root / "refA")


def which_output(out: Path, world: World) -> str:
    """'A' or 'B': whose complete output `latest` points to."""
    latest = publish.latest_run(out)
    assert latest is not None, "latest is missing or dangling"
    hashes = content_hashes(verify_run(latest))
    matches = [name for name, ref in world.refs.items() if ref.hashes == hashes]
    assert matches, f"latest ({latest.name}) is neither run A nor run B"
    return matches[0]


def which_vectors(db: Path, world: World) -> tuple[str, int]:
    """'A' or 'B': whose vectors the LanceDB table holds, and the table version."""
    ids, vectors, version = table_snapshot(db)
    matches = [
        name for name, ref in world.refs.items()
        if np.array_equal(ids, ref.ids) and np.array_equal(vectors, ref.vectors)
    ]
    assert matches, (
        f"the LanceDB table (version {version}, {len(ids)} rows) holds neither A nor B: "
        + "; ".join(f"{n}: {len(r.ids)} rows, same ids {np.array_equal(ids, r.ids)}"
                    for n, r in world.refs.items())
    )
    return matches[0], version


def assert_named_runs_complete(out: Path) -> None:
    for run in (out / "runs").iterdir():
        if not run.name.startswith("."):
            verify_run(run)


def assert_no_leftovers(out: Path) -> None:
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert [r for r in runs if r.startswith(".")] == [], runs
    assert list(out.glob(".latest-*")) == []
    assert runs == [publish.latest_run(out).name]  # keep=1


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_kill_leaves_a_complete_output_and_the_next_run_recovers(point, world, tmp_path):
    out, db = tmp_path / "out", tmp_path / "db"
    shutil.copytree(world.template / "out", out, symlinks=True)
    shutil.copytree(world.template / "db", db, symlinks=True)
    _, version_a = which_vectors(db, world)

    job = Job(cli_args(world.data["B"], out, db, "--keep", "1"), prelude=point.prelude)
    if point.after:
        job.wait_for(point.after)
        if point.delay:
            time.sleep(point.delay)
        code = job.kill()
    else:
        code = job.finish()
    assert code == -9 or (point.may_finish and code == 0), job.text()

    # what a reader sees right after the kill
    output = which_output(out, world)
    vectors, version = which_vectors(db, world)
    assert version in (version_a, version_a + 1)
    assert_named_runs_complete(out)
    if point.latest:
        assert output == point.latest
    if point.lance:
        assert vectors == point.lance
    if point.name == "at-latest-switch":  # renamed, new symlink made, not yet switched
        assert len(list(out.glob(".latest-*"))) == 1

    # the next run succeeds and cleans up
    result = nightly.run(settings_for(world.data["B"], tmp_path))
    assert which_output(out, world) == "B"
    assert publish.latest_run(out) == result.run_dir.resolve()
    assert_no_leftovers(out)
    vectors, version = which_vectors(db, world)
    assert vectors == "B"
    assert version == result.manifest["lancedb"]["version"]
    assert not list((out / "history").rglob(".*"))  # no killed run's temporary link


def test_first_run_killed_while_lancedb_creates_the_table(world, tmp_path):
    """A first run SIGKILLed inside LanceDB's create_table leaves `<table>.lance/data/.tmp*`
    and no version (seen with real kills); LanceDB then lists the table but cannot open it.
    The next run must create the table anyway instead of failing on every run after."""
    (tmp_path / "db" / f"{TABLE}.lance" / "data").mkdir(parents=True)
    (tmp_path / "db" / f"{TABLE}.lance" / "data" / ".tmpKILLED").write_bytes(b"\0" * 4096)
    nightly.run(settings_for(world.data["A"], tmp_path))
    assert which_output(tmp_path / "out", world) == "A"
    assert which_vectors(tmp_path / "db", world)[0] == "A"


def test_lancedb_keeps_the_versions_of_the_kept_runs_restorable(world, tmp_path):
    """Each run adds one table version; the job keeps exactly the versions its kept runs
    recorded (and newer), and those answer checkout and restore."""
    import lancedb

    versions = []
    for name in ("A", "B", "A"):
        result = nightly.run(settings_for(world.data[name], tmp_path, keep=2))
        versions.append(result.manifest["lancedb"]["version"])
        time.sleep(0.01)  # Lance tells versions apart by their millisecond timestamps
    assert versions == [versions[0], versions[0] + 1, versions[0] + 2]
    table = lancedb.connect(str(tmp_path / "db")).open_table(TABLE)
    # the job pruned the version only the deleted run (keep=2) recorded
    assert [v["version"] for v in table.list_versions()] == versions[1:]
    table.checkout(versions[1])  # a reader can pin the version a kept run recorded
    assert table.count_rows() == len(world.refs["B"].ids)
    table.checkout_latest()
    assert publish.prune_table_versions(tmp_path / "out", tmp_path / "db", table) == []
    assert which_vectors(tmp_path / "db", world) == ("A", versions[2])

    table.restore(versions[1])  # rollback to the previous run: a new version with B's rows
    assert which_vectors(tmp_path / "db", world) == ("B", versions[2] + 1)


def test_prune_never_deletes_the_run_latest_points_to(tmp_path, monkeypatch):
    """Even when its id sorts first (the clock went back) and OUT is a relative path."""
    monkeypatch.chdir(tmp_path)
    out = Path("out")
    for run_id in ("20260105T000000000000Z", "20260101T000000000000Z"):  # newest published last
        fake_run(out, run_id)
    publish.prune(out, keep=1)
    assert (out / "latest" / "marker").read_text() == "20260101T000000000000Z"


def test_prune_leaves_no_half_deleted_run_under_a_run_name(tmp_path, monkeypatch):
    out = tmp_path
    for run_id in ("20260101T000000000000Z", "20260102T000000000000Z"):
        stage = publish.staging_dir(out, run_id)
        for i in range(4):
            (stage / f"f{i}").write_text("x")
        publish.publish(out, stage, run_id)

    def dies_halfway(path, *args, **kwargs):
        os.unlink(Path(path) / "f0")
        raise KeyboardInterrupt  # stands in for the kill

    monkeypatch.setattr(publish.shutil, "rmtree", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        publish.prune(out, keep=1)
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == [".deleting-20260101T000000000000Z", "20260102T000000000000Z"]
    monkeypatch.undo()
    publish.prune(out, keep=1)
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["20260102T000000000000Z"]
