"""The engine interface without Ray: shard ranges, the local executor, and that nothing
imports Ray unless `--ray` is given (the cluster tests themselves are in test_ray.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recs.core.settings import Settings
from recs.core.types import RankedNeighbors
from recs.engines import open_executor, ranges
from recs.jobs import shards
from recs.stages import recipe, write
from recs.stages.embed import embed
from recs.stages.ingest import load_dataset


@pytest.mark.parametrize("total", [0, 1, 255, 256, 1000, 9724, 100_000])
@pytest.mark.parametrize("cpus", [1, 2, 16])
def test_ranges_cover_the_catalog_contiguously(total: int, cpus: int) -> None:
    parts = ranges(total, cpus)
    if not total:
        assert parts == []
        return
    assert [a for a, _ in parts[1:]] == [b for _, b in parts[:-1]]  # contiguous
    assert (parts[0][0], parts[-1][1]) == (0, total)
    sizes = [b - a for a, b in parts]
    assert not sizes or max(sizes) - min(sizes) <= 1
    assert len(parts) <= max(1, cpus * 4)
    assert len(parts) == 1 or min(sizes) >= 256


def test_local_executor_is_the_plain_recipe(make_dataset) -> None:
    settings = Settings(dim=2, top_k=3)
    data = load_dataset(make_dataset(), 1)
    emb = embed(data.ratings, settings)
    prep = recipe.prepare(data.ratings, emb, settings)
    seen = []
    with open_executor(None) as executor:
        assert executor.name == "local" and executor.ranges(7) == [(0, 7)]
        got = write.sort_lists(shards.rank(executor, prep, settings))
        assert executor.map(lambda s, a, b: (s, a, b), "x", [(0, 2), (2, 5)],
                            lambda d, t: seen.append((d, t))) == [("x", 0, 2), ("x", 2, 5)]
    assert seen == [(1, 2), (2, 2)]
    want = write.sort_lists(recipe.rank(prep, settings))
    for name in RankedNeighbors.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    # any split into ranges concatenates to the same lists
    parts = [shards.rank_range((prep, settings), a, b) for a, b in [(0, 3), (3, len(prep.queries))]]
    split = write.sort_lists(RankedNeighbors.concat(parts))
    np.testing.assert_array_equal(split.neighbor_ids, want.neighbor_ids)
    np.testing.assert_array_equal(split.scores, want.scores)


@pytest.mark.slow
def test_nothing_imports_ray_without_the_flag() -> None:
    code = ("import sys\nimport recs.cli, recs.jobs.nightly, recs.engines\n"
            "from recs.engines import open_executor\nopen_executor(None).close()\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# A stand-in driver: starts the watchdog as the Ray engine does, has one child from before
# it (not the cluster's) and one after it in a session of its own (like Ray's agents, which
# outlive their parents), says their pids, then waits to be killed.
DRIVER = r"""
import os, subprocess, sys, time
before = subprocess.Popen(["sleep", "300"], start_new_session=True)
dog = subprocess.Popen([sys.executable, "-m", "recs.engines.watchdog", str(os.getpid())],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=0)
dog.stdout.readline()
after = subprocess.Popen(["sleep", "300"], start_new_session=True)
print(before.pid, after.pid, dog.pid, flush=True)
time.sleep(300)
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _running(pid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_watchdog_ends_what_a_killed_driver_started_after_it() -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    before, after, dog = map(int, driver.stdout.readline().split())
    try:
        time.sleep(0.5)  # a few of the watchdog's looks at the driver's children
        assert _running(after) and _running(dog)
        driver.kill()
        driver.wait()
        assert _gone_within(after, 20), "the driver's orphan outlived it"
        assert _gone_within(dog, 20), "the watchdog did not exit"
        assert _running(before)  # there before the watchdog: not the cluster's, left alone
    finally:
        for pid in (before, after):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
