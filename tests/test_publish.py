"""Run folders: the lock, the atomic switch of `latest`, retention."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import fake_run, run_tiny

from recs.cli import main
from recs.core.errors import RunLockedError
from recs.stages import publish


def test_second_holder_of_the_lock_fails_at_once(tmp_path):
    with publish.run_lock(tmp_path):
        with pytest.raises(RunLockedError, match="another recs run"):
            with publish.run_lock(tmp_path):
                pass
    with publish.run_lock(tmp_path):  # released on exit
        pass


@pytest.mark.slow
def test_run_while_another_process_holds_the_lock_exits_4(make_dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from recs.stages.publish import run_lock\n"
         f"with run_lock(Path({str(out)!r})):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = CliRunner().invoke(main, ["run", "--data", str(make_dataset()), "--out",
                                           str(out), "--dim", "2", "--top-k", "3"])
        assert result.exit_code == 4
        assert "another recs run" in result.output
        assert not (out / "latest").exists()
        assert not (out / "runs").exists() or not any((out / "runs").iterdir())
    finally:
        holder.kill()
        holder.wait()


def test_the_database_lock_waits_its_turn_then_gives_up(tmp_path):
    db = tmp_path / "db"
    with publish.db_lock(db) as held:
        assert held
        with publish.db_lock(db, wait=0) as other:  # housekeeping skips instead of waiting
            assert other is False
        with pytest.raises(RunLockedError, match=r"held the LanceDB database .* over 0.2 s"):
            with publish.db_lock(db, wait=0.2):
                pass
    with publish.db_lock(db, wait=0) as held:  # released on exit
        assert held


@pytest.mark.slow
def test_runs_sharing_a_database_never_write_it_at_once(make_dataset, tmp_path, monkeypatch):
    data = make_dataset()
    first = run_tiny(data, tmp_path / "a")  # out a/out, db a/db
    db = tmp_path / "a" / "db"
    monkeypatch.setattr(publish, "DB_LOCK_WAIT", 0.3)
    with publish.db_lock(db):  # another run (other OUT, same DB) is writing the table
        with pytest.raises(RunLockedError, match="this run published nothing"):
            run_tiny(data, tmp_path / "a")
    assert publish.latest_run(tmp_path / "a" / "out") == first.run_dir
    assert run_tiny(data, tmp_path / "a").run_dir != first.run_dir  # its turn now


def test_latest_switches_to_each_new_run(tmp_path):
    fake_run(tmp_path, "20260101T000000000000Z")
    assert (tmp_path / "latest" / "marker").read_text() == "20260101T000000000000Z"
    fake_run(tmp_path, "20260102T000000000000Z")
    assert (tmp_path / "latest" / "marker").read_text() == "20260102T000000000000Z"
    assert os.readlink(tmp_path / "latest") == "runs/20260102T000000000000Z"


def test_prune_keeps_newest_and_clears_leftovers(tmp_path):
    for day in range(1, 6):
        fake_run(tmp_path, f"202601{day:02d}T000000000000Z")
    publish.staging_dir(tmp_path, "20260109T000000000000Z")  # a killed run's leftovers
    removed = publish.prune(tmp_path, keep=2)
    left = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert left == ["20260104T000000000000Z", "20260105T000000000000Z"]
    assert len(removed) == 4
    assert (tmp_path / "latest" / "marker").read_text() == "20260105T000000000000Z"
