"""Run folders under OUT: a lock against overlapping runs, staging, one atomic switch of
`latest`, and retention. Readers only ever see `latest` pointing at a complete run.

    OUT/.lock                  held (flock) for the whole run
    OUT/runs/.partial-<run_id> a run being written; left behind only by a killed run
    OUT/runs/<run_id>          a complete run
    OUT/latest -> runs/<run_id>
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from recs.errors import RunLockedError

log = logging.getLogger(__name__)

PARTIAL = ".partial-"


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: the UTC start time to the microsecond, e.g. 20261127T071508123456Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold OUT/.lock for the duration; a second holder fails at once with RunLockedError.

    flock is released by the kernel when the process dies, so a killed run never leaves a
    stale lock behind.
    """
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"another recs run is writing to {out} (lock {out / '.lock'} is held); "
                "this run did nothing: let the other one finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def latest_run(out: Path) -> Path | None:
    """The run folder `OUT/latest` points to, or None before the first publish."""
    link = out / "latest"
    if not link.is_symlink():
        return None
    target = (out / os.readlink(link)).resolve()
    return target if target.is_dir() else None


def staging_dir(out: Path, run_id: str) -> Path:
    """A fresh, empty folder for this run's files, invisible to readers until published."""
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stage = runs / f"{PARTIAL}{run_id}"
    stage.mkdir()
    return stage


def publish(out: Path, stage: Path, run_id: str) -> Path:
    """Make the staged run complete and switch `latest` to it in one atomic rename."""
    final = out / "runs" / run_id
    os.sync()  # the files must be on disk before any name points at them
    stage.rename(final)
    tmp_link = out / f".latest-{run_id}"
    tmp_link.symlink_to(Path("runs") / run_id)
    os.replace(tmp_link, out / "latest")
    _fsync_dir(out)
    log.info("published %s: %s now points to runs/%s", run_id, out / "latest", run_id)
    return final


def prune(out: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete runs (never the one `latest` points to) and
    whatever killed runs left behind. Call only while holding the lock."""
    runs = out / "runs"
    current = latest_run(out)
    complete = sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    doomed = [p for p in complete[:-keep] if p != current]
    doomed += [p for p in runs.iterdir() if p.name.startswith(PARTIAL)]
    doomed += [p for p in out.glob(".latest-*") if p.is_symlink()]
    for path in doomed:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path)
    if doomed:
        log.info("removed %d old or unfinished run folders", len(doomed))
    return [p.name for p in doomed]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
