"""Two real `recs run` processes on one output folder: the second exits at once with code 4
and a clear message, and the first still completes and publishes a complete run.

The first run is paused (SIGSTOP) while it holds the lock, so the second always meets a held
lock however fast or slow the machine is; no timing is assumed."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from jobtools import (
    Job,
    cli_args,
    embeddings_snapshot,
    table_snapshot,
    verify_run,
)

from recs.stages import publish
from recs.tools.synth import write_synthetic

pytestmark = pytest.mark.slow  # two real `recs run` processes


def listing(root) -> list[tuple[str, int]]:
    """(path, size) of everything under root, to see that nothing changed."""
    if not root.exists():
        return []
    return sorted((p.relative_to(root).as_posix(), p.lstat().st_size) for p in root.rglob("*"))


def test_second_run_exits_4_and_never_disturbs_the_first(tmp_path):
    data = tmp_path / "data"
    write_synthetic(data, users=300, movies=2000, ratings=20_000, seed=1)
    out, db = tmp_path / "out", tmp_path / "db"
    first = Job(cli_args(data, out, db))
    try:
        first.wait_for("recs.stages.source:")  # logged only once the lock is held
        os.kill(first.proc.pid, signal.SIGSTOP)
        before = listing(out), listing(db)

        second = Job(cli_args(data, out, db))
        assert second.finish() == 4, second.text()
        message = second.text()
        assert "another recs run is writing to" in message
        assert "let the other one finish" in message
        assert "Traceback" not in message
        assert (listing(out), listing(db)) == before  # the second wrote nothing
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)
    assert first.finish() == 0, first.text()

    run_dir = publish.latest_run(out)
    assert run_dir is not None
    verify_run(run_dir)
    assert sorted(p.name for p in (out / "runs").iterdir()) == [run_dir.name]
    ids, vectors, _ = table_snapshot(db)
    want_ids, want_vectors = embeddings_snapshot(run_dir)
    assert np.array_equal(ids, want_ids) and np.array_equal(vectors, want_vectors)
