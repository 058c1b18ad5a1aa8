"""Run folders under OUT: a lock against overlapping runs, staging, one atomic switch of
`latest`, and retention. Readers only ever see `latest` pointing at a complete run.

    OUT/.lock                   held (flock) for the whole run
    OUT/runs/.partial-<run_id>  a run being written; left behind only by a killed run
    OUT/runs/.deleting-<run_id> a run being pruned; left behind only by a killed run
    OUT/runs/<run_id>           a complete run (a name without a dot is always complete)
    OUT/latest -> runs/<run_id>
    DB/.recs.lock               held (flock) while a run writes or prunes a LanceDB table in DB

A run that fails removes its own `.partial-<run_id>` (see `staging`); a run removes the
leftovers of dead runs as soon as it holds the lock (`remove_leftovers`). A full, over-quota or
read-only OUT or DB folder is an EnvironmentFaultError (exit 5) with one line: which folder,
how much is free, how much the last run's files took, and what to do (`environment_faults`).

Everything the job writes stays inside OUT: a symlink where the job expects one of its own
folders (runs, history) or files (.lock, latest as anything but a symlink) is refused with an
InputError before any work, because following it would write, or prune, somewhere else.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recs.core.errors import EnvironmentFaultError, InputError, RunLockedError
from recs.core.location import Location, is_s3

log = logging.getLogger(__name__)

PARTIAL = ".partial-"
DELETING = ".deleting-"
OWN_FOLDERS = ("runs", "history")
MANIFEST = "manifest.json"  # in each run folder


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: the UTC start time to the microsecond, e.g. 20261127T071508123456Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold OUT/.lock for the duration; a second holder fails at once with RunLockedError.

    flock is released by the kernel when the process dies, so a killed run never leaves a
    stale lock behind. Once the lock is held, OUT's layout is checked (see check_layout).
    """
    lock = out / ".lock"
    with environment_faults(out, "--out", out):
        out.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(lock)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"another recs run is writing to {out} (lock {lock} is held); "
                "this run did nothing: let the other one finish"
            ) from None
        try:  # the pid is for people only: a full disk must not stop the run from cleaning up
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as err:
            log.debug("could not write the pid to %s: %s", lock, err)
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


@contextmanager
def staging(out: Path, run_id: str) -> Iterator[Path]:
    """`staging_dir` for the body of the with-block, removed again if the block fails for
    any reason (a fault, a bug, Ctrl-C), so a failed run leaves neither files nor a full disk
    behind. Faults of OUT inside the block become EnvironmentFaultError."""
    with environment_faults(out, "--out", out):
        stage = staging_dir(out, run_id)
    try:
        with environment_faults(out, "--out", out):
            yield stage
    except BaseException:
        discard(stage)
        raise


def discard(stage: Path) -> None:
    """Remove a staging folder of this run (it may not exist); never raises."""
    if not stage.is_dir() or stage.is_symlink():
        return
    try:
        shutil.rmtree(stage)
        log.info("removed the unfinished run folder %s", stage)
    except OSError as err:
        log.warning("could not remove the unfinished run folder %s (%s): the next run will",
                    stage, err)


def remove_leftovers(out: Path) -> list[Path]:
    """Remove what killed runs left under OUT: `.partial-*` and `.deleting-*` run folders and
    `.latest-*` links. Only while holding the lock: then no live run owns any of them.
    Returns the paths removed."""
    runs = out / "runs"
    leftovers = [p for p in runs.iterdir() if p.name.startswith((PARTIAL, DELETING))] \
        if runs.is_dir() and not runs.is_symlink() else []
    leftovers += [p for p in out.glob(".latest-*") if p.is_symlink()]
    for path in leftovers:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    return leftovers


def publish(out: Path, stage: Path, run_id: str, also: Iterable[Path] = ()) -> Path:
    """Make the staged run complete and switch `latest` to it in one atomic rename.

    also: other local folders the run wrote that the run's files refer to (the LanceDB
    folder); their file systems are flushed too before the switch.
    """
    final = out / "runs" / run_id
    sync_file_systems([stage, *also])  # on disk before any name points at them
    stage.rename(final)
    _fsync_dir(out / "runs")
    tmp_link = out / f".latest-{run_id}"
    tmp_link.symlink_to(Path("runs") / run_id)
    os.replace(tmp_link, out / "latest")
    _fsync_dir(out)
    log.info("published %s: %s now points to runs/%s", run_id, out / "latest", run_id)
    return final


def _libc_syncfs() -> Any:
    """glibc's syncfs(2), or None where the C library has none (not Linux)."""
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None


_SYNCFS = _libc_syncfs()  # Python's os module has sync and fsync, but no syncfs


def sync_file_systems(paths: Iterable[Path]) -> None:
    """Flush to disk every file system holding one of `paths` (folders), each once.

    syncfs(2) waits for one file system's writes, where os.sync() waits for every file system
    of the machine (other jobs' disks too). Where there is no syncfs, os.sync(). A write-back
    error the kernel reports (Linux >= 5.8: EIO, ENOSPC) raises OSError naming the folder.
    """
    if _SYNCFS is None:
        os.sync()
        return
    done: set[int] = set()
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            device = os.fstat(fd).st_dev
            if device not in done and _SYNCFS(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), str(path))
            done.add(device)
        finally:
            os.close(fd)


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
    for path in doomed:
        gone = runs / f"{DELETING}{path.name}"
        path.rename(gone)
        shutil.rmtree(gone)
    leftovers = remove_leftovers(out)
    if doomed or leftovers:
        log.info("removed %d old and %d unfinished run folders", len(doomed), len(leftovers))
    return [p.name for p in doomed + leftovers]


def prune_table_versions(out: Path, db: Location, table: Any) -> list[int]:
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


def _recorded_versions(out: Path, db: Location, name: str) -> list[int]:
    """The LanceDB versions of table `name` in `db` that complete runs under OUT recorded."""
    runs = out / "runs"
    found = []
    for run in runs.iterdir() if runs.is_dir() else []:
        if run.name.startswith(".") or not run.is_dir():
            continue
        try:
            lance = read_manifest(run)["lancedb"]
            same = lance["table"] == name and _same_db(lance["db"], db)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a manifest we wrote: it protects nothing
        if same:
            found.append(int(lance["version"]))
    return found


def _same_db(recorded: str, db: Location) -> bool:
    """Whether a manifest's `lancedb.db` names `db` (a folder, by its real path; a URI as is)."""
    if isinstance(db, Path):
        return not is_s3(recorded) and Path(recorded).resolve() == db.resolve()
    return recorded == str(db)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- faults of the machine, not the input: full, over quota, read-only ----------------------

FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how LanceDB (Rust) reports an errno
# the input files each published Parquet file is made from: when one of them changed since the
# last run, that file is new (embeddings move with any rating; movies.parquet counts ratings)
PARQUET_INPUTS = {
    "embeddings.parquet": ("ratings",),
    "recommendations.parquet": ("ratings", "movies"),
    "movies.parquet": ("ratings", "movies", "links"),
}
ALWAYS_NEW = ("json/v1/changes.json",)  # plus manifest.json: both name the run
# settings that change no published byte (where and how fast, not what)
OPERATIONAL = {"data", "cache", "db", "table", "out", "batch_size", "threads",
               "write_threads", "keep", "history_days", "min_hr", "metrics_file",
               "cache_control", "s3_retry_seconds"}


@contextmanager
def environment_faults(
    folder: Location, flag: str, out: Path, *, after: str | None = None
) -> Iterator[None]:
    """Turn a full, over-quota or read-only `folder` (the one set by `flag`, --out or --db)
    into EnvironmentFaultError with one line; other errors pass through unchanged. A bucket's
    faults are already one line (from the object-store engine): nothing to do for them.

    `out`: the output folder, whose `latest` manifest says how much the last run's files
    took. `after`: the run id when the fault comes after `latest` switched to it.
    """
    if not isinstance(folder, Path):
        yield
        return
    try:
        yield
    except OSError as err:
        if err.errno not in FAULTS or not _inside(err.filename, folder):
            raise
        raise EnvironmentFaultError(
            fault_message(err.errno, folder, flag, out, path=err.filename, after=after)
        ) from err
    except RuntimeError as err:  # LanceDB: "lance error: LanceError(IO): ... (os error 28)"
        found = _OS_ERROR.search(str(err))
        if not found or int(found.group(1)) not in FAULTS:
            raise
        raise EnvironmentFaultError(
            fault_message(int(found.group(1)), folder, flag, out, after=after)
        ) from err


def check_free_space(
    out: Path, previous: dict[str, Any] | None, inputs: dict[str, Any], settings: dict[str, Any]
) -> int | None:
    """Refuse (EnvironmentFaultError, the ENOSPC line) before writing when OUT clearly cannot
    hold the files this run will certainly write anew. Returns that lower bound in bytes, or
    None on a first run (nothing to compare with: a fault while writing says it then).

    A file whose bytes did not change is hard-linked from `latest` and costs no space, so
    the bound counts only what is new for certain: changes.json and manifest.json (they name
    the run), and each Parquet file whose input files (`inputs`: name -> sha256, as in the
    manifest) changed since the last run; all three when a setting that shapes the output
    changed. Each file is rounded up to the file system's block. The JSON lists are not
    counted (how many change is known only once they are written), so a run can still run
    out of space while writing: then the same line comes from the fault, and this run's
    folder is removed.
    """
    if previous is None:
        return None
    st = _statvfs(out)  # one call for both: the free bytes and the block to round up to
    need = new_bytes_at_least(previous, inputs, settings, max(st.f_frsize, 1))
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise EnvironmentFaultError(fault_message(errno.ENOSPC, out, "--out", out, need=need))
    return need


def new_bytes_at_least(
    previous: dict[str, Any], inputs: dict[str, Any], settings: dict[str, Any], block: int
) -> int:
    """The bytes a run will certainly write anew, estimated from the last run's manifest."""
    files = previous.get("files") or {}
    before = (previous.get("source") or {}).get("files") or {}
    changed = {name.split(".")[0] for name, meta in inputs.items()
               if (before.get(name) or {}).get("sha256") != meta.get("sha256")}
    shaped = {k: v for k, v in settings.items() if k not in OPERATIONAL}
    old_shape = {k: v for k, v in (previous.get("settings") or {}).items()
                 if k not in OPERATIONAL}
    new = list(ALWAYS_NEW)
    new += [name for name, made_from in PARQUET_INPUTS.items()
            if shaped != old_shape or changed & set(made_from)]
    sizes = [files[name]["bytes"] for name in new if name in files]
    sizes.append(len(json.dumps(previous, ensure_ascii=False, separators=(",", ":")).encode()))
    return sum(-(-size // block) * block for size in sizes)


def last_run_bytes(out: Path) -> tuple[int, int] | None:
    """(bytes of data, bytes on disk) of the run `latest` points to, per its manifest's file
    sizes (files with the same content counted once: a run hard-links those; on disk, each
    rounded up to OUT's block size), or None without a readable manifest."""
    current = latest_run(out)
    if current is None:
        return None
    try:
        files = read_manifest(current)["files"]
        sizes = [*{meta["sha256"]: meta["bytes"] for meta in files.values()}.values(),
                 (current / MANIFEST).stat().st_size]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    block = _block_size(out)
    return sum(sizes), sum(-(-size // block) * block for size in sizes)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a published run (OSError or ValueError when it cannot be read)."""
    return json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))


def _last_run_text(out: Path, flag: str) -> str:
    """What the last run took, for the fault line: its files (OUT) or its vectors (DB)."""
    if flag == "--db":
        current = latest_run(out)
        try:
            vectors = int(read_manifest(current)["files"]["embeddings.parquet"]["bytes"])
        except (OSError, ValueError, KeyError, TypeError):  # TypeError: no `latest` yet
            return "no previous run to compare with"
        return f"the last run's vectors took {human_bytes(vectors)} (as Parquet)"
    last = last_run_bytes(out)
    if last is None:
        return "no previous run to compare with"
    return f"the last run took {human_bytes(last[1])} on disk ({human_bytes(last[0])} of data)"


def disk_space(folder: Path) -> tuple[int, int]:
    """(bytes free to this user, total bytes) of the file system holding `folder` (or its
    nearest existing parent)."""
    st = _statvfs(folder)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def _statvfs(folder: Path) -> os.statvfs_result:
    """statvfs of the file system holding `folder` (or its nearest existing parent)."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.statvfs(path)


def fault_message(
    code: int, folder: Path, flag: str, out: Path, *, path: str | None = None,
    need: int | None = None, after: str | None = None,
) -> str:
    """The one line for a full (ENOSPC), over-quota (EDQUOT) or unwritable (EROFS, EACCES)
    folder: which folder, what is free, what the last run took, what happened, what to do."""
    try:
        free, total = disk_space(folder)
        space = f"{human_bytes(free)} free of {human_bytes(total)}"
    except OSError:
        space = "free space unknown"
    where = f"{flag} folder {folder}"
    doing = ""
    if path is not None:
        shown = Path(path)
        if shown.is_relative_to(folder):
            shown = shown.relative_to(folder)
        doing = f" (at {shown})" if str(shown) != "." else ""
    last_text = _last_run_text(out, flag)
    if need is not None:
        what = (f"not enough space in {where}: {space}, and this run needs at least "
                f"{human_bytes(need)} of new files")
    elif code == errno.ENOSPC:
        what = f"no space left in {where}{doing}: {space}"
    elif code == errno.EDQUOT:
        what = f"disk quota exceeded in {where}{doing}: {space} on the disk"
    elif code == errno.EROFS:
        what = f"{where} is on a read-only file system{doing}: {space}"
    else:
        what = (f"{where} is not writable by this user (uid {os.geteuid()}: permission "
                f"denied{doing.replace(' (', ' ').rstrip(')')}): {space}")
    if after is not None:
        outcome = f"run {after} was published, but its housekeeping stopped"
    elif need is not None:
        outcome = "nothing was written and `latest` is unchanged"
    else:
        outcome = "nothing was published or left behind and `latest` is unchanged"
    todo = {
        errno.ENOSPC: f"free space there (or point {flag} at a larger disk) and run again",
        errno.EDQUOT: f"free space within this user's quota (or raise it, or point {flag} "
                      "elsewhere) and run again",
        errno.EROFS: f"remount it read-write (or point {flag} at a writable folder) and "
                     "run again",
    }.get(code if need is None else errno.ENOSPC,
          f"give uid {os.geteuid()} write access to it (chown/chmod) or point {flag} at a "
          "writable folder, and run again")
    return f"{what}; {last_text}; {outcome}: {todo}"


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _inside(filename: str | bytes | None, folder: Path) -> bool:
    """Whether an error's file is in `folder` (True when the error names no file: the
    caller scoped the block to writes in `folder`)."""
    if filename is None:
        return True
    path = Path(os.fsdecode(filename)).absolute()
    return path.is_relative_to(Path(folder).absolute())


def _block_size(folder: Path) -> int:
    try:
        return max(os.statvfs(folder).f_frsize, 1)
    except OSError:
        return 4096


@contextmanager
def housekeeping(folder: Location, flag: str, out: Path, run_id: str) -> Iterator[None]:
    """For the steps after `latest` switched to `run_id` (history, pruning): a full or
    read-only folder (or an object store that cannot be reached) is logged as a warning,
    since the run is published; the next run that finds the fault still in place stops on it."""
    try:
        with environment_faults(folder, flag, out, after=run_id):
            yield
    except EnvironmentFaultError as err:
        log.warning("%s", err)
