"""Run folders under OUT: a lock against overlapping runs, staging, one atomic switch of
`latest`, and retention. Readers only ever see `latest` pointing at a complete run.

    OUT/.lock                   held (flock) for the whole run
    OUT/runs/.partial-<run_id>  a run being written; left behind only by a killed run
    OUT/runs/.deleting-<run_id> a run being pruned; left behind only by a killed run
    OUT/runs/<run_id>           a complete run (a name without a dot is always complete)
    OUT/latest -> runs/<run_id>
    DB/.recs.lock               held (flock) while a run writes or prunes a LanceDB table in DB

Everything the job writes stays inside OUT: a symlink where the job expects one of its own
folders (runs, history) or files (.lock, latest as anything but a symlink) is refused with an
InputError before any work, because following it would write, or prune, somewhere else.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recs.core.errors import InputError, RunLockedError

log = logging.getLogger(__name__)

PARTIAL = ".partial-"
DELETING = ".deleting-"
OWN_FOLDERS = ("runs", "history")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: the UTC start time to the microsecond, e.g. 20261127T071508123456Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold OUT/.lock for the duration; a second holder fails at once with RunLockedError.

    flock is released by the kernel when the process dies, so a killed run never leaves a
    stale lock behind. Once the lock is held, OUT's layout is checked (see check_layout).
    """
    out.mkdir(parents=True, exist_ok=True)
    lock = out / ".lock"
    fd = _open_lock(lock)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"another recs run is writing to {out} (lock {lock} is held); "
                "this run did nothing: let the other one finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        check_layout(out)
        yield
    finally:
        os.close(fd)


DB_LOCK_WAIT = 120.0  # seconds: a LanceDB write takes well under one at 60k movies


@contextmanager
def db_lock(db: Path, wait: float | None = None) -> Iterator[bool]:
    """Hold DB/.recs.lock while writing or pruning a LanceDB table in database folder `db`:
    runs with different OUT folders that share a database take turns there.

    Waits up to `wait` seconds (default DB_LOCK_WAIT) for another run's turn, then raises
    RunLockedError; wait=0 never waits and yields False when the lock is taken (for work that
    can be skipped), True when held.
    """
    db.mkdir(parents=True, exist_ok=True)
    lock = db / ".recs.lock"
    fd = _open_lock(lock)
    wait = DB_LOCK_WAIT if wait is None else wait
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if wait == 0:
                    yield False
                    return
                if time.monotonic() >= deadline:
                    raise RunLockedError(
                        f"another recs run has held the LanceDB database {db} for over "
                        f"{wait:g} s (lock {lock}); this run published nothing: run it again "
                        "once the other one is done"
                    ) from None
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)


def _open_lock(lock: Path) -> int:
    """A file descriptor of the lock file `lock`, created if missing, never through a
    symlink (an InputError then: following it would write somewhere else)."""
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise InputError(
            f"{lock} is a symlink; the job writes only inside {lock.parent}: remove it and "
            "run again"
        ) from None


def check_layout(out: Path) -> None:
    """Raise InputError when a name the job writes under OUT is not what the job made:
    OUT/runs or OUT/history a symlink or a file, OUT/latest anything but a symlink."""
    for name in OWN_FOLDERS:
        path = out / name
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            kind = "a symlink" if path.is_symlink() else "not a folder"
            raise InputError(
                f"{path} is {kind}; the job writes and prunes only inside {out}: "
                "move it away (or point --out at a fresh folder) and run again"
            )
    latest = out / "latest"
    if latest.exists() and not latest.is_symlink():
        raise InputError(
            f"{latest} is not a symlink; the job replaces it with a symlink to the newest run: "
            "move it away and run again"
        )


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
    check_layout(out)  # mkdir(exist_ok) would have accepted a symlink to a folder elsewhere
    stage = runs / f"{PARTIAL}{run_id}"
    stage.mkdir()
    return stage


def publish(out: Path, stage: Path, run_id: str) -> Path:
    """Make the staged run complete and switch `latest` to it in one atomic rename."""
    final = out / "runs" / run_id
    os.sync()  # the files must be on disk before any name points at them
    stage.rename(final)
    _fsync_dir(out / "runs")
    tmp_link = out / f".latest-{run_id}"
    tmp_link.symlink_to(Path("runs") / run_id)
    os.replace(tmp_link, out / "latest")
    _fsync_dir(out)
    log.info("published %s: %s now points to runs/%s", run_id, out / "latest", run_id)
    return final


def prune(out: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete runs (never the one `latest` points to) and
    whatever killed runs left behind. Call only while holding the lock.

    A run folder is renamed to a dot name before its files go, so a prune killed midway
    leaves a `.deleting-*` folder (removed next time), never a half-deleted run under a
    run's name.
    """
    runs = out / "runs"
    current = latest_run(out)
    current_name = current.name if current is not None else None
    complete = sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    doomed = [p for p in complete[:-keep] if p.name != current_name]
    leftovers = [p for p in runs.iterdir() if p.name.startswith((PARTIAL, DELETING))]
    leftovers += [p for p in out.glob(".latest-*") if p.is_symlink()]
    for path in doomed:
        gone = runs / f"{DELETING}{path.name}"
        path.rename(gone)
        shutil.rmtree(gone)
    for path in leftovers:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    if doomed or leftovers:
        log.info("removed %d old and %d unfinished run folders", len(doomed), len(leftovers))
    return [p.name for p in doomed + leftovers]


def prune_table_versions(out: Path, db: Path, table: Any) -> list[int]:
    """Delete the LanceDB versions of `table` (in database folder `db`) that no kept run needs.

    Every complete run under OUT/runs records the table version it wrote; versions older
    than the oldest of those go, so each kept run can still be matched with its vectors
    (`table.checkout(manifest["lancedb"]["version"])`) and `--keep` bounds both. Versions
    written by killed runs between kept ones stay until they fall behind. The latest version
    is never deleted; data files of unfinished writes go only once Lance deems them 7 days
    old (deleting them sooner could break a concurrent writer with another OUT). Call after
    prune(), under the lock. Returns the versions deleted, oldest first.
    """
    recorded = _recorded_versions(out, db, table.name)
    if not recorded:
        return []
    versions = {v["version"]: v["timestamp"] for v in table.list_versions()}
    oldest_kept = min(recorded)
    doomed = sorted(v for v in versions if v < oldest_kept)
    kept = [v for v in versions if v >= oldest_kept]
    if not doomed or not kept:
        return []
    newest_doomed, first_kept = versions[doomed[-1]], versions[min(kept)]
    if first_kept <= newest_doomed:
        return []  # same millisecond: cannot cut between them by age
    # Lance deletes by age: cut halfway between the two versions, in the naive local time
    # that list_versions reports
    cutoff = newest_doomed + (first_kept - newest_doomed) / 2
    table.optimize(cleanup_older_than=datetime.now() - cutoff)
    left = {v["version"] for v in table.list_versions()}
    removed = [v for v in doomed if v not in left]
    if removed:
        log.info("removed %d old LanceDB versions of %s (kept %d and newer)",
                 len(removed), table.name, oldest_kept)
    return removed


def _recorded_versions(out: Path, db: Path, name: str) -> list[int]:
    """The LanceDB versions of table `name` in `db` that complete runs under OUT recorded."""
    runs = out / "runs"
    found = []
    for run in runs.iterdir() if runs.is_dir() else []:
        if run.name.startswith(".") or not run.is_dir():
            continue
        try:
            lance = json.loads((run / "manifest.json").read_text(encoding="utf-8"))["lancedb"]
            same = lance["table"] == name and Path(lance["db"]).resolve() == db.resolve()
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a manifest we wrote: it protects nothing
        if same:
            found.append(int(lance["version"]))
    return found


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
