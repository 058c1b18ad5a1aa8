"""Resolve `--data` to a local MovieLens-latest folder (ratings.csv, movies.csv, links.csv).

Each of the three tables may instead be a Parquet file with the same column names
(ratings.parquet, movies.parquet, links.parquet), per table: ratings.parquet beside movies.csv and
links.csv is fine. A folder holding both ratings.csv and ratings.parquet is refused (the job does
not guess which one is meant): remove one.

Inputs: nothing (the pinned ml-latest-small, downloaded once), a MovieLens-latest folder, a .zip
of one, an http(s) URL of such a zip, or an ml-100k folder (converted once). Everything fetched,
extracted or converted lives in the cache folder. Each cache entry is built in a staging folder
inside the cache and renamed into place only when complete, so a killed run leaves either no
entry or a whole one, and a concurrent reader never sees half an entry.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import ssl
import stat
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

import duckdb

from recs.core.errors import InputError
from recs.core.location import Bucket
from recs.core.sql import connect, load_sql

log = logging.getLogger(__name__)

DEFAULT_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
DEFAULT_NAME = "ml-latest-small"
# sha256 of the files inside GroupLens's ml-latest-small.zip (generated 2018-09-26); we pin the
# extracted files, not the zip, because the zip's own bytes were never seen from this network
DEFAULT_PINS: Mapping[str, str] = MappingProxyType({
    "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
})
ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# sha256 of the files of GroupLens's ml-100k.zip (released 1998-04) that the job reads
ML100K_PINS: Mapping[str, str] = MappingProxyType({
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
})
# the datasets `fetch_known` downloads and verifies: name -> (url, pins, release date)
KNOWN: Mapping[str, tuple[str, Mapping[str, str], str]] = MappingProxyType({
    DEFAULT_NAME: (DEFAULT_URL, DEFAULT_PINS, "2018-09-26"),
    "ml-100k": (ML100K_URL, ML100K_PINS, "1998-04"),
})
TABLES = ("ratings", "movies", "links")
FORMATS = (".csv", ".parquet")  # each table is <table>.csv or <table>.parquet
REQUIRED_FILES = tuple(f"{table}.csv" for table in TABLES)
PARQUET_FILES = tuple(f"{table}.parquet" for table in TABLES)
ML100K_FILES = ("u.data", "u.item")
# part of the ml-100k cache key: bump it when the conversion SQL changes so old entries are unused
ML100K_VERSION = 1
DOWNLOAD_TIMEOUT_S = 60.0
STALE_STAGING_S = 24 * 3600.0
SOURCE_RECORD = "source.json"  # in a copy of bucket objects: the sha256 of each
_CHUNK = 1 << 20
_USAGE = "pass a MovieLens folder, a .zip of one, an http(s) URL of a zip, or an ml-100k folder"


def sha256_file(path: Path, chunk_size: int = _CHUNK) -> str:
    """Hex sha256 of a file, read in `chunk_size`-byte pieces (constant memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def cache_entry(cache: Path, kind: str, key: str) -> Path:
    """The cache folder <kind>-<16 hex of sha256(key)>: one entry per distinct key."""
    return cache / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def dataset_files(folder: Path) -> dict[str, Path]:
    """The input files a run reads from a MovieLens-latest folder: {file name: path}.

    One file per table (TABLES), each <table>.csv or <table>.parquet (see table_file); raises
    InputError naming the missing ones, or a table present in both formats.
    """
    found = {table: table_file(folder, table) for table in TABLES}
    missing = [table for table, path in found.items() if path is None]
    if missing:
        raise InputError(
            f"{folder}: missing {_file_names(folder, missing)}; point --data at the folder that "
            "holds ratings, movies and links, each as .csv (MovieLens-latest format) or .parquet "
            "(the same column names)"
        )
    return {path.name: path for path in found.values() if path is not None}


def table_file(folder: Path, table: str) -> Path | None:
    """The file holding `table` (one of TABLES) in `folder`: <table>.csv or <table>.parquet, None
    when neither exists. Raises InputError when both exist: which one is meant is not guessed."""
    found = [Path(folder) / f"{table}{ext}" for ext in FORMATS]
    found = [path for path in found if path.exists()]
    if len(found) > 1:
        raise InputError(
            f"{folder}: holds both {table}.csv and {table}.parquet; remove the one that should "
            "not be read (each table is read from one file; csv and parquet may be mixed across "
            "tables)"
        )
    return found[0] if found else None


def _file_names(folder: Path, tables: list[str]) -> str:
    """The missing `tables` as file names: .csv, or .parquet when the folder holds Parquet."""
    if any((Path(folder) / name).exists() for name in PARQUET_FILES):
        return ", ".join(f"{table}.parquet (or .csv)" for table in tables)
    return ", ".join(f"{table}.csv" for table in tables)


def resolve_data(
    data: str | None,
    cache: Path,
    *,
    default_url: str = DEFAULT_URL,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """A local MovieLens-latest folder for `data` (see the module docstring for what it may be).

    data: None or blank -> ml-latest-small from `default_url`, checked against DEFAULT_PINS;
    a folder; a .zip file; an http(s) URL of a zip. cache: folder for downloads and conversions
    (created if needed). timeout: seconds per network operation (connect, each read).
    Raises InputError with a one-line message for anything the user must fix.
    """
    started = time.perf_counter()
    cache = Path(cache).expanduser()
    if data is None or not data.strip():
        folder, how = fetch_known(DEFAULT_NAME, cache, default_url, timeout)
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", data):
        folder, how = _from_url(data, cache, timeout)
    else:
        folder, how = _from_path(Path(data).expanduser(), cache)
    log.info("data: %s -> %s in %.2f s", how, folder, time.perf_counter() - started)
    return folder


# --- the kinds of input ---------------------------------------------------------------------


def fetch_known(
    name: str, cache: Path, url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S
) -> tuple[Path, str]:
    """GroupLens's dataset `name` (a key of KNOWN) as published, in `cache`/`name`: downloaded
    once from `url` (default: its GroupLens URL), its files checked against the pinned sha256
    before the entry appears, and checked again on every cache hit. Returns (folder, how)."""
    default_url, pins, released = KNOWN[name]
    url = url or default_url
    entry = Path(cache).expanduser() / name
    if entry.is_dir():
        bad = _pin_mismatches(entry, pins)
        if bad:
            raise InputError(
                f"{entry}: cached {name} was altered ({', '.join(bad)} no longer match "
                f"the pinned sha256); delete {entry} and run again to download it afresh"
            )
        return entry, f"cache hit for {name}"
    with _staging(entry.parent) as tmp:
        hint = f"download {name}.zip elsewhere and pass it with --data"
        archive = _download(url, tmp, timeout, hint)
        root = _extract(archive, tmp / "x", url)
        bad = _pin_mismatches(root, pins)
        if bad:
            raise InputError(
                f"{url}: {', '.join(bad)} do not match the pinned sha256 of {name} "
                f"({released}), so nothing was cached; check the URL, or {hint}"
            )
        _publish(root, entry)
    return entry, f"downloaded {url} and verified {name}"


def from_bucket(bucket: Bucket, cache: Path) -> Path:
    """The MovieLens files under `bucket.uri` copied into a verified cache entry.

    The entry is keyed by the URI and the objects' ETags, so a changed object makes a new
    entry; each file's sha256 is recorded in the entry's SOURCE_RECORD, and checked on every
    cache hit. ml-100k's u.data and u.item are converted as for a local folder.
    """
    started = time.perf_counter()
    cache = Path(cache).expanduser()
    root = bucket.uri.key()
    found = {info.key.rsplit("/", 1)[-1]: info for info in bucket.list(root)
             if "/" not in info.key[len(root) + 1 if root else 0:]}
    names = [n for n in (*(t + ext for t in TABLES for ext in FORMATS), *ML100K_FILES)
             if n in found]
    if not any(n.startswith("ratings.") or n == "u.data" for n in names):
        raise InputError(
            f"{bucket.uri}/: no ratings.csv (or ratings.parquet, or ml-100k u.data) under this "
            "prefix; point --data at the prefix that holds ratings, movies and links"
        )
    tags = "".join(f"{n} {found[n].etag} {found[n].size}\n" for n in names)
    entry = cache_entry(cache, "s3", f"{bucket.uri}\n{tags}")
    how = f"cache hit for {bucket.uri}"
    if entry.is_dir():
        _check_record(entry)
    else:
        with _staging(cache) as tmp:
            record = {}
            for name in names:
                if bucket.download(found[name].key, tmp / name) is None:
                    raise InputError(f"{bucket.uri}/{name}: removed while it was copied; run "
                                     "again")
                record[name] = sha256_file(tmp / name)
            (tmp / SOURCE_RECORD).write_text(json.dumps(
                {"uri": str(bucket.uri), "sha256": record}, indent=1, sort_keys=True))
            _publish(tmp, entry)
        how = f"copied {len(names)} objects from {bucket.uri}"
    folder, converted = _as_latest(entry, cache, str(bucket.uri))
    log.info("data: %s -> %s in %.2f s", f"{how}, {converted}" if converted else how, folder,
             time.perf_counter() - started)
    return folder


def _check_record(entry: Path) -> None:
    """InputError when a cached copy of bucket objects no longer has its recorded sha256."""
    try:
        record = json.loads((entry / SOURCE_RECORD).read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        record = None
    bad = _pin_mismatches(entry, record) if isinstance(record, dict) else [SOURCE_RECORD]
    if bad:
        raise InputError(
            f"{entry}: cached copy of bucket objects was altered ({', '.join(bad)} no longer "
            f"match the recorded sha256); delete {entry} and run again"
        )


def _from_url(url: str, cache: Path, timeout: float) -> tuple[Path, str]:
    if not url.lower().startswith(("http://", "https://")):
        raise InputError(f"{url}: only http:// and https:// URLs are supported; {_USAGE}")
    # keyed by URL: a URL is fetched once, later runs reuse the entry without the network
    entry = cache_entry(cache, "url", url)
    how = f"cache hit for {url}"
    if not entry.is_dir():
        with _staging(cache) as tmp:
            archive = _download(url, tmp, timeout, "or download the zip yourself, pass its path")
            root = _extract(archive, tmp / "x", url)
            _publish(root, entry)
        how = f"downloaded and extracted {url}"
    folder, converted = _as_latest(entry, cache, url)
    return folder, f"{how}, {converted}" if converted else how


def _from_path(path: Path, cache: Path) -> tuple[Path, str]:
    if path.is_dir():
        folder, converted = _as_latest(path, cache, str(path))
        return folder, f"ml-100k folder {path}, {converted}" if converted else "local folder"
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; {_USAGE}")
    if path.suffix.lower() != ".zip":
        raise InputError(f"{path}: is a file but not a .zip; {_USAGE}")
    # keyed by content: the same zip under any name or path is extracted once
    entry = cache / f"zip-{sha256_file(path)[:16]}"
    how = f"cache hit for {path}"
    if not entry.is_dir():
        with _staging(cache) as tmp:
            root = _extract(path, tmp / "x", str(path))
            _publish(root, entry)
        how = f"extracted {path}"
    folder, converted = _as_latest(entry, cache, str(path))
    return folder, f"{how}, {converted}" if converted else how


def _as_latest(folder: Path, cache: Path, source: str) -> tuple[Path, str | None]:
    """`folder` if it is in MovieLens-latest format (and None), else its ml-100k conversion
    (and how it was obtained: converted or a cache hit)."""
    found = {table: table_file(folder, table) for table in TABLES}
    if any(found.values()):
        missing = [table for table, path in found.items() if path is None]
        if missing:
            raise InputError(
                f"{source}: missing {_file_names(folder, missing)} beside "
                f"{', '.join(path.name for path in found.values() if path is not None)}; "
                "a MovieLens-latest folder needs ratings, movies and links (.csv, or .parquet "
                "with the same column names)"
            )
        return folder, None
    if any((folder / name).is_file() for name in ML100K_FILES):
        return _convert_ml100k(folder, cache, source)
    raise InputError(
        f"{source}: no ratings.csv, movies.csv or links.csv (or .parquet; nor ml-100k "
        f"u.data/u.item) found; {_USAGE}"
    )


def _convert_ml100k(folder: Path, cache: Path, source: str) -> tuple[Path, str]:
    """The ml-100k folder converted into MovieLens-latest CSVs (UTF-8), cached by content."""
    missing = _missing(folder, ML100K_FILES)
    if missing:
        raise InputError(
            f"{source}: ml-100k folder is missing {', '.join(missing)}; "
            "it needs u.data and u.item as GroupLens ships them"
        )
    sums = "".join(f"{sha256_file(folder / n)}  {n}\n" for n in ML100K_FILES)
    entry = cache_entry(cache, "ml100k", f"ml100k-v{ML100K_VERSION}\n{sums}")
    if entry.is_dir():
        return entry, "cache hit for its conversion"
    with _staging(cache) as tmp:
        out = tmp / "ml100k"
        out.mkdir()
        params = {
            "u_data": str(folder / "u.data"),
            "u_item": str(folder / "u.item"),
            "ratings_csv": str(out / "ratings.csv"),
            "movies_csv": str(out / "movies.csv"),
            "links_csv": str(out / "links.csv"),
        }
        con = connect(2)
        try:
            for name, keys in (
                ("convert/ratings_csv", ("u_data", "ratings_csv")),
                ("convert/movies_csv", ("u_item", "movies_csv")),
                ("convert/links_csv", ("movies_csv", "links_csv")),
            ):
                con.execute(load_sql(name), {k: params[k] for k in keys})
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"{source}: cannot convert ml-100k ({first}); u.data must be tab-separated "
                "user, item, rating, timestamp and u.item 24 '|'-separated fields"
            ) from exc
        finally:
            con.close()
        _publish(out, entry)
    return entry, "converted from ml-100k"


# --- zip, download, cache helpers -----------------------------------------------------------


def _missing(folder: Path, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not (Path(folder) / name).is_file()]


def _pin_mismatches(folder: Path, pins: Mapping[str, str]) -> list[str]:
    """Names in `pins` that are absent from `folder` or whose sha256 differs."""
    return [
        name for name, want in pins.items()
        if not (folder / name).is_file() or sha256_file(folder / name) != want
    ]


def _download(url: str, dest: Path, timeout: float, hint: str) -> Path:
    """Fetch `url` into `dest/download.zip`; the name appears only once every byte arrived."""
    part, done = dest / "download.part", dest / "download.zip"
    request = urllib.request.Request(url, headers={"User-Agent": "recs (python urllib)"})
    received, expected = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        raise InputError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {hint}") from exc
    except urllib.error.URLError as exc:
        raise InputError(f"cannot download {url}: {exc.reason}; {hint}") from exc
    except (TimeoutError, ConnectionError, ssl.SSLError, http.client.HTTPException) as exc:
        reason = str(exc) or type(exc).__name__
        raise InputError(f"cannot download {url}: {reason}; {hint}") from exc
    if expected is not None and received != expected:
        raise InputError(
            f"cannot download {url}: got {received} of {expected} bytes; run again, or {hint}"
        )
    os.replace(part, done)
    return done


def _extract(archive: Path, dest: Path, source: str) -> Path:
    """Extract `archive` into `dest` safely; the dataset folder: `dest` or its one sub-folder.

    Refuses entries that would land outside `dest` (absolute, `..`, drive letters),
    symlinks, and duplicate names, before writing anything.
    """
    dest.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(info, dest, source)
            for info in members:
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("xb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
    except FileExistsError as exc:
        raise InputError(
            f"{source}: the zip holds {Path(exc.filename).name!r} twice; refusing it, "
            "rebuild the zip"
        ) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        raise InputError(
            f"{source}: not a readable zip (truncated or corrupt: {exc}); "
            "download or copy it again"
        ) from exc
    return _dataset_root(dest, source)


def _check_member(info: zipfile.ZipInfo, dest: Path, source: str) -> None:
    name = info.filename
    parts = re.split(r"[/\\]", name)
    unsafe = (
        name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in parts
        or "\x00" in name
        or not (dest / name).resolve().is_relative_to(dest.resolve())
    )
    if unsafe:
        raise InputError(
            f"{source}: zip entry {name!r} would land outside the extraction folder; "
            "refusing the zip, rebuild it with relative paths"
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InputError(
            f"{source}: zip entry {name!r} is a symlink; refusing the zip, "
            "rebuild it with plain files"
        )


def _dataset_root(top: Path, source: str) -> Path:
    """`top` if it holds dataset files, else its only sub-folder that does."""
    markers = REQUIRED_FILES + PARQUET_FILES + ML100K_FILES
    if any((top / name).is_file() for name in markers):
        return top
    candidates = [
        sub for sub in sorted(top.iterdir())
        if sub.is_dir() and not sub.name.startswith(("__MACOSX", "."))
        and any((sub / name).is_file() for name in markers)
    ]
    if len(candidates) == 1:
        return candidates[0]
    where = "several sub-folders" if candidates else "neither its top level nor a sub-folder"
    raise InputError(
        f"{source}: the zip has {where} holding ratings.csv, movies.csv and links.csv; "
        "zip exactly one MovieLens folder"
    )


@contextmanager
def _staging(cache: Path) -> Iterator[Path]:
    """A fresh folder inside `cache` (same filesystem, so renames out of it are atomic)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _sweep_stale(cache)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache))
    except OSError as exc:
        raise InputError(f"{cache}: cannot write the cache folder ({exc}); pass a writable "
                         "--cache") from exc
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep_stale(cache: Path) -> None:
    """Remove staging folders a killed run left behind (older than STALE_STAGING_S)."""
    cutoff = time.time() - STALE_STAGING_S
    for stale in cache.glob(".tmp-*"):
        try:
            if stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass  # another process removed it first


def _publish(staged: Path, entry: Path) -> None:
    """Rename the complete folder `staged` to `entry`; if another run got there first, keep its."""
    for path in sorted(staged.rglob("*")):
        if path.is_file():
            _fsync(path)  # data on disk before the name, so a power cut can't leave holes
    try:
        os.rename(staged, entry)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and entry.is_dir():
            return  # a concurrent run published the same entry; the caller's staging is dropped
        raise
    _fsync(entry.parent)  # the rename itself


def _fsync(path: Path) -> None:
    """Flush the file or folder `path` to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
