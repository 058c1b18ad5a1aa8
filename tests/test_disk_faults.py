"""A full, over-quota or read-only output or database folder: exit 5 with one line, nothing
left behind, `latest` untouched, and the next run with room publishes.

Each case runs twice where the machine allows it: on a real tmpfs mounted for the test (root
only), and with the fault injected at the job's own OS calls (`os.write`, `os.open`,
`os.statvfs` as `recs.stages.write` and `recs.stages.publish` see them), which needs nothing
and so always runs in CI. The tmpfs variant skips, with the reason, only where mounting is
impossible.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

try:
    from helpers import write_dataset
except ImportError:  # before the helpers moved out of conftest
    from conftest import write_dataset

from jobtools import Job

from recs.cli import main
from recs.core.errors import EnvironmentFaultError
from recs.core.settings import Settings
from recs.jobs import nightly
from recs.stages import publish, store, write

pytestmark = pytest.mark.slow  # every test here runs the job (tiny data)

KIB = 1024
PAGE = 4096


def groups_dataset(folder: Path, renamed: bool = False) -> Path:
    """60 movies in 6 taste groups (6 users each): 60 lists, so a run is ~60 JSON files.
    `renamed`: every title differs, so every file of a run differs from the other one's."""
    rows = []
    for group in range(6):
        movies = [100 + 10 * group + j for j in range(10)]
        for user in range(1 + 6 * group, 7 + 6 * group):
            for j, movie in enumerate(movies):
                rows.append((user, movie, 4.0 + (user + j) % 2, 1_500_000_000 + 60 * user + j))
    titles = {m: f"{'Other' if renamed else 'Film'} {m} (20{m % 100:02d})"
              for m in {r[1] for r in rows}}
    return write_dataset(folder, rows, titles)


class Tmpfs:
    """A tmpfs of `size` bytes mounted for one test; the job's OUT is `root/out`."""

    kind = "tmpfs"

    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)],
                       check=True, capture_output=True)
        self.out = root / "out"

    def free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def leave(self, free: int) -> None:
        """Fill the disk with a ballast file until `free` bytes are left."""
        with open(self.root / "ballast", "ab") as f:
            f.write(b"\0" * max(self.free() - free, 0))

    def make_room(self, size: int) -> None:
        (self.root / "ballast").unlink(missing_ok=True)
        self._remount(f"size={size}")

    def read_only(self, on: bool) -> None:
        self._remount("ro" if on else "rw")

    def _remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.root)], check=True,
                       capture_output=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], check=False, capture_output=True)


class Injected:
    """The same disk as seen by the job's OS calls: `free` bytes under OUT (each write costs
    whole pages, like tmpfs), ENOSPC (or `fault`) past them, EROFS when read-only."""

    kind = "injected"

    def __init__(self, root: Path, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.size, self.bytes_free = root, size, size
        self.out = root / "out"
        self.fault = errno.ENOSPC
        self.readonly = False
        self._lock = threading.Lock()
        proxy = _OsProxy(self)
        monkeypatch.setattr(write, "os", proxy)
        monkeypatch.setattr(publish, "os", proxy)

    def free(self) -> int:
        return self.bytes_free

    def leave(self, free: int) -> None:
        self.bytes_free = free

    def make_room(self, size: int) -> None:
        self.size = self.bytes_free = size

    def read_only(self, on: bool) -> None:
        self.readonly = on

    def close(self) -> None:
        pass

    def mine(self, path) -> bool:
        return Path(os.fsdecode(path)).absolute().is_relative_to(self.root.absolute())

    def spend(self, n: int) -> None:
        cost = -(-n // PAGE) * PAGE
        with self._lock:
            if cost > self.bytes_free:
                raise OSError(self.fault, os.strerror(self.fault))
            self.bytes_free -= cost


class _OsProxy:
    """`os` for recs.stages.write and recs.stages.publish, with an Injected disk's faults."""

    def __init__(self, disk: Injected) -> None:
        self._disk = disk
        self._fds: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(os, name)

    def open(self, path, flags, mode=0o777, **kw):
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if self._disk.readonly and writes and self._disk.mine(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        fd = os.open(path, flags, mode, **kw)
        if self._disk.mine(path):
            self._fds.add(fd)
        return fd

    def write(self, fd, data):
        if fd in self._fds:
            self._disk.spend(len(data))
        return os.write(fd, data)

    def close(self, fd):
        self._fds.discard(fd)
        return os.close(fd)

    def link(self, src, dst, *a, **kw):
        if self._disk.readonly and self._disk.mine(dst):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(dst))
        return os.link(src, dst, *a, **kw)

    def statvfs(self, path):
        if not self._disk.mine(path):
            return os.statvfs(path)
        return SimpleNamespace(f_bavail=self._disk.bytes_free // PAGE, f_frsize=PAGE,
                               f_bfree=self._disk.bytes_free // PAGE,
                               f_blocks=self._disk.size // PAGE)


def can_mount(where: Path) -> str | None:
    """None when a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None:
        return "no mount command"
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"mount -t tmpfs is not permitted here ({done.stderr.strip()})"
    subprocess.run(["umount", str(where)], check=False)
    return None


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request, tmp_path, monkeypatch):
    """A disk factory: disk(size) -> Tmpfs or Injected of `size` bytes at tmp_path/disk."""
    made = []

    def make(size: int):
        root = tmp_path / "disk"
        if request.param == "tmpfs":
            why = can_mount(tmp_path / "probe")
            if why:
                pytest.skip(f"{why}; the injected variant of this test covers the behaviour")
            made.append(Tmpfs(root, size))
        else:
            made.append(Injected(root, size, monkeypatch))
        return made[-1]

    yield make
    for d in made:
        d.close()


@pytest.fixture
def data(tmp_path):
    return {"A": groups_dataset(tmp_path / "A"), "B": groups_dataset(tmp_path / "B", True)}


def settings(data: Path, out: Path, db: Path, **extra) -> Settings:
    return Settings(data=str(data), out=out, db=db, dim=2, top_k=3, **extra)


def run(data: Path, out: Path, db: Path, **extra) -> nightly.RunResult:
    return nightly.run(settings(data, out, db, **extra))


def leftovers(out: Path) -> list[str]:
    runs = out / "runs"
    found = [p.name for p in runs.iterdir() if p.name.startswith(".")] if runs.is_dir() else []
    return found + [p.name for p in out.glob(".latest-*")]


def snapshot(out: Path) -> tuple[str | None, dict[str, bytes]]:
    """Where `latest` points and the bytes of every file there."""
    link = out / "latest"
    if not link.is_symlink():
        return None, {}
    target = link.resolve()
    files = {p.relative_to(target).as_posix(): p.read_bytes()
             for p in sorted(target.rglob("*")) if p.is_file()}
    return os.readlink(link), files


def test_full_disk_on_the_first_run_then_recovery(disk, data, tmp_path):
    d = disk(64 * KIB)  # a run of the 60-movie set needs ~500 KiB
    with pytest.raises(EnvironmentFaultError) as err:
        run(data["A"], d.out, tmp_path / "db")
    message = str(err.value)
    assert err.value.exit_code == 5
    assert message.startswith(f"no space left in --out folder {d.out} (at runs/.partial-")
    assert "free of" in message and "no previous run to compare with" in message
    assert "free space there (or point --out at a larger disk) and run again" in message
    assert "\n" not in message
    assert leftovers(d.out) == []  # its own partial is gone, so is the space it took
    assert not (d.out / "latest").exists()
    d.make_room(4 * 1024 * KIB)
    result = run(data["A"], d.out, tmp_path / "db")
    assert (d.out / "latest").resolve() == result.run_dir
    assert leftovers(d.out) == []


def test_full_disk_on_the_second_run_leaves_latest_and_recovers(disk, data, tmp_path):
    d, db = disk(4 * 1024 * KIB), tmp_path / "db"
    first = run(data["A"], d.out, db)
    before = snapshot(d.out)
    # room for the files a run must write anyway, not for 60 new lists
    d.leave(100 * KIB)
    with pytest.raises(EnvironmentFaultError) as err:
        run(data["B"], d.out, db)
    message = str(err.value)
    assert message.startswith(f"no space left in --out folder {d.out} (at runs/.partial-")
    last = publish.last_run_bytes(d.out)
    assert last is not None and f"({publish.human_bytes(last[0])} of data)" in message
    assert snapshot(d.out) == before and leftovers(d.out) == []
    assert store.open_table(db, "movielens_small").version == first.manifest["lancedb"][
        "version"]  # the table was not touched either
    # the same input as `latest`: every file is hard-linked, so it fits where B did not
    d.leave(100 * KIB)  # (the injected disk does not refund what B wrote and removed)
    again = run(data["A"], d.out, db)
    assert again.manifest["counts"]["files_reused"] >= 60  # every list
    assert leftovers(d.out) == []
    # space is back: B publishes
    d.make_room(8 * 1024 * KIB)
    result = run(data["B"], d.out, db)
    assert (d.out / "latest").resolve() == result.run_dir
    assert leftovers(d.out) == []


def test_a_run_that_clearly_cannot_fit_is_refused_before_writing(disk, data, tmp_path,
                                                                 monkeypatch):
    d, db = disk(4 * 1024 * KIB), tmp_path / "db"
    run(data["A"], d.out, db)
    before = snapshot(d.out)
    d.leave(PAGE)
    staged = []
    monkeypatch.setattr(publish, "staging_dir",
                        lambda *a: staged.append(a) or pytest.fail("staged a doomed run"))
    with pytest.raises(EnvironmentFaultError) as err:
        run(data["B"], d.out, db)
    message = str(err.value)
    assert message.startswith(f"not enough space in --out folder {d.out}: ")
    assert " B free of " in message or " KiB free of " in message
    assert "this run needs at least" in message and "the last run took" in message
    assert "nothing was written and `latest` is unchanged" in message
    assert staged == [] and snapshot(d.out) == before and leftovers(d.out) == []


def test_the_estimate_counts_only_files_that_will_be_new(data, tmp_path):
    first = run(data["A"], tmp_path / "out", tmp_path / "db")
    m = first.manifest
    same = publish.new_bytes_at_least(m, m["source"]["files"], m["settings"], PAGE)
    changed_inputs = {n: {**meta, "sha256": "0" * 64} for n, meta in m["source"]["files"].items()}
    changed = publish.new_bytes_at_least(m, changed_inputs, m["settings"], PAGE)
    total = sum(meta["bytes"] for meta in m["files"].values())
    # unchanged input: only changes.json and manifest.json are new (the rest is linked)
    assert same < changed < total
    parquet = sum(-(-m["files"][n]["bytes"] // PAGE) * PAGE for n in publish.PARQUET_INPUTS)
    assert changed - same == parquet


def test_stale_partials_of_dead_runs_are_removed_before_writing(disk, data, tmp_path):
    d, db = disk(4 * 1024 * KIB), tmp_path / "db"
    run(data["A"], d.out, db)
    dead = d.out / "runs" / ".partial-20000101T000000000000Z"
    dead.mkdir()
    (dead / "junk").write_bytes(b"\1" * (64 * KIB))
    (d.out / ".latest-20000101T000000000000Z").symlink_to("runs/nowhere")
    result = run(data["B"], d.out, db)
    assert (d.out / "latest").resolve() == result.run_dir
    assert leftovers(d.out) == []


def test_read_only_output_folder(disk, data, tmp_path):
    d, db = disk(4 * 1024 * KIB), tmp_path / "db"
    run(data["A"], d.out, db)
    before = snapshot(d.out)
    d.read_only(True)
    try:
        with pytest.raises(EnvironmentFaultError) as err:
            run(data["B"], d.out, db)
    finally:
        d.read_only(False)
    message = str(err.value)
    assert message.startswith(f"--out folder {d.out} is on a read-only file system (at .lock)")
    assert "remount it read-write (or point --out at a writable folder) and run again" in message
    assert err.value.exit_code == 5
    assert snapshot(d.out) == before and leftovers(d.out) == []
    result = run(data["B"], d.out, db)  # writable again: it publishes
    assert (d.out / "latest").resolve() == result.run_dir


def test_read_only_database_folder_removes_the_partial(data, tmp_path, monkeypatch):
    out, db = tmp_path / "out", tmp_path / "db"
    first = run(data["A"], out, db)
    before = snapshot(out)
    real_open = os.open

    def read_only_db(path, flags, *a, **kw):  # what a read-only --db answers the lock open
        if Path(os.fsdecode(path)).parent == db:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_open(path, flags, *a, **kw)

    with monkeypatch.context() as m, pytest.raises(EnvironmentFaultError) as err:
        m.setattr(publish, "os", SimpleNamespace(**{**vars(os), "open": read_only_db}))
        run(data["B"], out, db)
    assert str(err.value).startswith(
        f"--db folder {db} is on a read-only file system (at .recs.lock)")
    assert "the last run's vectors took" in str(err.value)
    assert "point --db at a writable folder" in str(err.value)
    assert snapshot(out) == before and leftovers(out) == []  # written files removed
    assert store.open_table(db, "movielens_small").version == first.manifest["lancedb"][
        "version"]


def test_a_full_database_folder_from_lancedb_is_the_same_fault(data, tmp_path, monkeypatch):
    out, db = tmp_path / "out", tmp_path / "db"

    def full(*a, **k):  # LanceDB's own report of ENOSPC, as a RuntimeError from Rust
        raise RuntimeError("lance error: LanceError(IO): No space left on device (os error 28)")

    monkeypatch.setattr(store, "write_table", full)
    with pytest.raises(EnvironmentFaultError) as err:
        run(data["A"], out, db)
    assert str(err.value).startswith(f"no space left in --db folder {db}: ")
    assert leftovers(out) == [] and not (out / "latest").exists()


@pytest.mark.parametrize(("fault", "start", "todo"), [
    (errno.EDQUOT, "disk quota exceeded in --out folder", "free space within this user's quota"),
    (errno.EACCES, "is not writable by this user (uid", "write access to it (chown/chmod)"),
])
def test_quota_and_permission_faults(fault, start, todo, data, tmp_path, monkeypatch):
    d = Injected(tmp_path / "disk", 64 * KIB, monkeypatch)
    d.fault = fault
    with pytest.raises(EnvironmentFaultError) as err:
        run(data["A"], d.out, tmp_path / "db")
    assert start in str(err.value) and todo in str(err.value)
    assert leftovers(d.out) == []


def test_any_failure_removes_its_partial(data, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def boom(*a, **k):
        raise ValueError("a bug")

    monkeypatch.setattr(store, "write_table", boom)
    with pytest.raises(ValueError, match="a bug"):
        run(data["A"], out, tmp_path / "db")
    assert leftovers(out) == [] and (out / "runs").is_dir()


def test_cli_prints_one_line_and_exits_5(disk, data, tmp_path):
    d = disk(64 * KIB)
    result = CliRunner().invoke(main, ["run", "--data", str(data["A"]), "--out", str(d.out),
                                       "--db", str(tmp_path / "db"), "--dim", "2",
                                       "--top-k", "3"])
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: no space left in --out folder")
    assert leftovers(d.out) == []


# the child sends itself SIGTERM once its run folder holds every list (production has no hooks)
TERM_MID_WRITE = (
    "import os, signal, recs.stages.write as w\n"
    "_changes = w.write_changes\n"
    "def _term(*a, **k):\n"
    "    os.kill(os.getpid(), signal.SIGTERM)\n"
    "    return _changes(*a, **k)\n"
    "w.write_changes = _term\n"
)


def test_sigterm_mid_write_removes_the_partial_and_writes_metrics(data, tmp_path):
    out, metrics = tmp_path / "out", tmp_path / "metrics" / "recs.prom"
    args = ["run", "--data", str(data["A"]), "--out", str(out), "--db", str(tmp_path / "db"),
            "--dim", "2", "--top-k", "3", "--metrics-file", str(metrics)]
    job = Job(args, prelude=TERM_MID_WRITE)
    assert job.finish() == 143, job.text()
    assert "Traceback" not in job.text()
    assert "removed the unfinished run folder" in job.text()
    assert leftovers(out) == [] and not (out / "latest").exists()
    assert "recs_last_run_exit_code 143" in metrics.read_text()
