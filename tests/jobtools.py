"""Helpers for tests that run `recs run` as a real process and judge what it left behind.

- `Job`: the CLI as a subprocess whose stderr log lines can be awaited, then killed or paused.
- `verify_run`: a run folder holds exactly its manifest's files, each with its size and sha256.
- `table_snapshot` / `embeddings_snapshot`: (movie_id, vector) of a LanceDB table or of a run's
  embeddings.parquet, sorted by id, to tell which run's vectors a table holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

TIMEOUT_S = 180.0  # generous: CI machines are shared and slow; nothing here measures time
TABLE = "movielens_small"
# a file of a run whose bytes depend on the previous run by design (it lists what changed)
RUN_RELATIVE = "json/v1/changes.json"


class Job:
    """`python -m recs.cli ARGS` with stderr read line by line on a thread.

    `prelude` is Python run in the child before the CLI (fault injection from the test side;
    production code has no hooks).
    """

    def __init__(self, args: list[str], prelude: str | None = None) -> None:
        if prelude:
            cmd = [sys.executable, "-c", f"{prelude}\nfrom recs.cli import main\nmain()", *args]
        else:
            cmd = [sys.executable, "-m", "recs.cli", *args]
        env = {**os.environ, "LANCEDB_LOG": "error", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        self.log: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, needle: str, timeout: float = TIMEOUT_S) -> str:
        """Block until a stderr line contains `needle`; fail if the job ends first."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no {needle!r} within {timeout} s:\n{self.text()}") from None
            if line is None:
                self.proc.wait(TIMEOUT_S)
                raise AssertionError(
                    f"job ended (exit {self.proc.returncode}) before {needle!r}:\n{self.text()}"
                )
            if needle in line:
                return line

    def kill(self) -> int:
        """SIGKILL now (no cleanup of any kind runs); the exit code (-9 if it was alive)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.finish()

    def finish(self, timeout: float = TIMEOUT_S) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def text(self) -> str:
        return "".join(self.log)


def cli_args(data: Path, out: Path, db: Path, *extra: str) -> list[str]:
    return ["run", "--data", str(data), "--out", str(out), "--db", str(db), "--table", TABLE,
            "--cache", str(out.parent / "cache"), "--dim", "16", "--top-k", "10", *extra]


def verify_run(run_dir: Path) -> dict[str, Any]:
    """The manifest of `run_dir`, after checking the folder holds exactly the files it lists
    (plus manifest.json), each with the listed size and sha256."""
    manifest = json.loads((run_dir / "manifest.json").read_bytes())
    on_disk = {
        p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if not p.is_dir()
    }
    assert on_disk == set(manifest["files"]) | {"manifest.json"}, run_dir
    for rel, meta in manifest["files"].items():
        data = (run_dir / rel).read_bytes()
        assert len(data) == meta["bytes"], rel
        assert hashlib.sha256(data).hexdigest() == meta["sha256"], rel
    return manifest


def content_hashes(manifest: dict[str, Any]) -> dict[str, str]:
    """sha256 per file of a run, without the files that name the run or its predecessor."""
    return {
        rel: meta["sha256"]
        for rel, meta in manifest["files"].items()
        if rel != "manifest.json" and not rel.startswith(RUN_RELATIVE)
    }


def embeddings_snapshot(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(run_dir / "embeddings.parquet")
    return _sorted(table["movie_id"].to_numpy(), table["vector"].to_pylist())


def table_snapshot(db: Path, name: str = TABLE) -> tuple[np.ndarray, np.ndarray, int]:
    """(ids, vectors, version) of the table as a new reader sees it, after checking that a
    vector search answers."""
    import lancedb

    table = lancedb.connect(str(db)).open_table(name)
    n = table.count_rows()
    rows = table.search().select(["movie_id", "vector"]).limit(n).to_arrow()
    ids, vectors = _sorted(rows["movie_id"].to_numpy(), rows["vector"].to_pylist())
    hits = table.search(vectors[0]).distance_type("cosine").limit(5).to_list()
    assert len(hits) == min(5, n)
    assert abs(hits[0]["_distance"]) < 1e-5  # the query vector itself is in the table
    return ids, vectors, table.version


def _sorted(ids: np.ndarray, vectors: list) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    return ids[order], np.asarray(vectors, np.float32)[order]
