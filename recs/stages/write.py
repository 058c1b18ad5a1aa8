"""The published files of one run: Parquet for BI tools, static JSON for a CDN.

Every file's bytes depend only on the input and the settings (never on the run id or the
time), so a file whose content did not change keeps identical bytes from run to run.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recs.core.arrays import distinct, distinct_inverse
from recs.core.types import Neighbors, RankedNeighbors

log = logging.getLogger(__name__)

JSON_ROOT = Path("json") / "v1"
NO_GENRES = "(no genres listed)"

RECOMMENDATIONS_SCHEMA = pa.schema([
    pa.field("movie_id", pa.int64(), nullable=False),
    pa.field("rank", pa.int16(), nullable=False),
    pa.field("neighbor_id", pa.int64(), nullable=False),
    pa.field("score", pa.float32(), nullable=False),
    pa.field("cosine", pa.float32(), nullable=False),
    pa.field("co_watchers", pa.int32(), nullable=False),
    pa.field("close_watchers", pa.int32(), nullable=False),
    pa.field("next_watchers", pa.int32(), nullable=False),
    pa.field("neighbor_title", pa.string()),
    pa.field("neighbor_genres", pa.string()),
    pa.field("shared_genres", pa.string()),
])


class FileLog:
    """Size and sha256 of every file written, keyed by POSIX path relative to the run folder.

    Given the previous run (its folder and manifest file map), a file whose bytes did not
    change is hard-linked from it instead of written: same bytes, same inode and mtime, so
    rsync or an object-store sync that compares size and mtime uploads only real changes.
    """

    def __init__(
        self, root: Path, previous: Path | None = None, previous_files: dict | None = None
    ) -> None:
        self.root = root
        self.files: dict[str, dict[str, Any]] = {}
        self.previous = previous if previous_files else None
        self.previous_files = previous_files or {}
        self.reused = 0

    def write(self, rel: str | Path, data: bytes) -> None:
        """Write `data` to a new file; refuses to overwrite or to follow a symlink."""
        rel = Path(rel).as_posix()
        self.files[rel] = self._put(rel, data)

    def write_many(self, items: Iterable[tuple[str, bytes]], threads: int = 4) -> None:
        """`write` for many small files at once: the system calls run on `threads` threads
        (they release the GIL), so file creation is not bound to one core's latency. `items`
        is taken 512 at a time and each chunk is written while the next one is made: given a
        generator, making the payloads (Python, one core) overlaps writing them (the kernel,
        the other core). Files are logged in the order of `items`."""
        items = iter(items)
        with ThreadPoolExecutor(threads) as pool:
            pending = []
            while chunk := list(itertools.islice(items, 512)):
                pending.append((chunk, pool.submit(lambda c: [self._put(*i) for i in c], chunk)))
            for chunk, done in pending:
                for (rel, _), meta in zip(chunk, done.result(), strict=True):
                    self.files[rel] = meta

    def link(self, rel: str, existing: str) -> None:
        """A second name for a file already written (same bytes, no second write)."""
        self.link_many([(rel, existing)], threads=1)

    def link_many(self, names: Iterable[tuple[str, str]], threads: int = 4) -> None:
        """`link` for many (rel, existing) pairs at once, the system calls on `threads`
        threads, 512 links a task; logged in the order of `names`."""
        names = list(names)
        root = self.root

        def link(chunk: list[tuple[str, str]]) -> None:
            for rel, existing in chunk:
                os.link(f"{root}/{existing}", f"{root}/{rel}", follow_symlinks=False)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(link, [names[i : i + 512] for i in range(0, len(names), 512)]))
        for rel, existing in names:
            self.files[rel] = dict(self.files[existing])

    def _put(self, rel: str, data: bytes) -> dict[str, Any]:
        meta = file_meta(data)
        if self.previous is not None and self.previous_files.get(rel) == meta:
            try:
                os.link(f"{self.previous}/{rel}", f"{self.root}/{rel}", follow_symlinks=False)
                self.reused += 1  # only a count for the log: a lost update costs nothing
                return meta
            except OSError:
                pass  # gone, or another file system: write it afresh
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        path = f"{self.root}/{rel}"
        fd = os.open(path, flags, 0o644)
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (large buffers, full disks)
                view = view[os.write(fd, view) :]
        except OSError as err:  # a full disk: name the file, as a failed open does
            raise OSError(err.errno, err.strerror, path) from None
        finally:
            os.close(fd)
        return meta


def file_meta(data: bytes) -> dict[str, Any]:
    """A file's entry in the manifest: {"bytes": size, "sha256": hex digest}."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def genre_list(genres: str | None) -> list[str]:
    """MovieLens's 'A|B|C' as a list; '(no genres listed)' is an empty list."""
    if not genres or genres == NO_GENRES:
        return []
    return genres.split("|")


def sort_lists(lists: RankedNeighbors) -> RankedNeighbors:
    """Lists in movie_id order, whatever order their shards arrived in; movies whose pool held
    no neighbour at all are dropped (they have no list)."""
    keep = (lists.neighbor_ids >= 0).any(axis=1)
    order = np.flatnonzero(keep)[np.argsort(lists.movie_ids[keep], kind="stable")]
    return take_lists(lists, order)


def take_lists(lists: RankedNeighbors, rows: np.ndarray | slice) -> RankedNeighbors:
    """The lists at `rows` (an index array or a slice), every field alike."""
    return RankedNeighbors(**{f.name: getattr(lists, f.name)[rows] for f in fields(lists)})


def common_genres(genres: list[str], other: list[str]) -> list[str]:
    """Genres of `other` that `genres` also has, in `other`'s order."""
    mine = set(genres)
    return [g for g in other if g in mine]


class SharedGenres:
    """Genres two movies share, from their MovieLens genre strings; a few hundred distinct
    strings make up 10^5-10^6 pairs, so each pair of strings is worked out once. Two threads
    may share one: at worst both work out the same pair, to the same list."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str | None, str | None], list[str]] = {}

    def of_pairs(
        self, movies: pa.Table, query_rows: np.ndarray, neighbour_rows: np.ndarray
    ) -> tuple[list[list[str]], np.ndarray]:
        """The genres shared by each (query, neighbour) pair of rows of `movies`, as the
        distinct lists and, per pair, the index of its list in them (int64): the pairs are
        grouped by their two genre strings with numpy, so Python sees each group once."""
        genres = movies["genres"].to_pylist()
        code: dict[str | None, int] = {}
        codes = np.fromiter((code.setdefault(g, len(code)) for g in genres), np.int64,
                            len(genres))
        distinct = list(code)
        keys, at = distinct_inverse(codes[query_rows] * len(distinct) + codes[neighbour_rows])
        query, neighbour = np.divmod(keys, len(distinct))
        split = [genre_list(g) for g in distinct]
        seen, shared = self._seen, []
        for q, n in zip(query.tolist(), neighbour.tolist(), strict=True):
            key = (distinct[q], distinct[n])
            if key not in seen:
                seen[key] = common_genres(split[q], split[n])
            shared.append(seen[key])
        return shared, at


def catalogue_rows(movies: pa.Table, movie_ids: np.ndarray) -> np.ndarray:
    """Rows of `movie_ids` in `movies` (ascending movie_id); KeyError for an id not in it."""
    ids = movies["movie_id"].to_numpy()
    rows = np.searchsorted(ids, movie_ids)
    found = np.append(ids, -1)[rows] == movie_ids  # past the end: no movie id is -1
    if not found.all():
        raise KeyError(f"movie ids not in the catalogue: {movie_ids[~found][:5].tolist()}")
    return rows


def recommendations_table(
    lists: RankedNeighbors, movies: pa.Table, shared_genres: SharedGenres | None = None
) -> pa.Table:
    """One row per (movie, rank), sorted by (movie_id, rank), with the neighbour's metadata.

    Slots without a neighbour (id -1: the pool ran short) are left out. `shared_genres`: a
    SharedGenres to share with `write_json`, so each pair of genre strings is done once.
    """
    n, k = lists.neighbor_ids.shape
    valid = (lists.neighbor_ids >= 0).ravel()
    nbrs = lists.neighbor_ids.ravel()[valid]
    queries = np.repeat(lists.movie_ids, k)[valid]
    at, q_at = catalogue_rows(movies, nbrs), catalogue_rows(movies, queries)
    distinct, pair = (shared_genres or SharedGenres()).of_pairs(movies, q_at, at)
    shared = pa.array(["|".join(g) for g in distinct], pa.string()).take(pa.array(pair))
    return pa.table(
        [
            pa.array(queries, pa.int64()),
            pa.array(np.tile(np.arange(1, k + 1, dtype=np.int16), n)[valid], pa.int16()),
            pa.array(nbrs, pa.int64()),
            pa.array(lists.scores.ravel()[valid], pa.float32()),
            pa.array(lists.cosine.ravel()[valid], pa.float32()),
            pa.array(lists.co_watchers.ravel()[valid], pa.int32()),
            pa.array(lists.close_watchers.ravel()[valid], pa.int32()),
            pa.array(lists.next_watchers.ravel()[valid], pa.int32()),
            movies["title"].take(at),
            movies["genres"].take(at),
            shared,
        ],
        schema=RECOMMENDATIONS_SCHEMA,
    )


def movies_table(movies: pa.Table, lists: Neighbors) -> pa.Table:
    """Every movie in movies.csv, with `has_list` saying whether it got a list."""
    has = np.isin(movies["movie_id"].to_numpy(), lists.movie_ids)
    return movies.append_column(pa.field("has_list", pa.bool_(), nullable=False), pa.array(has))


def write_parquet(written: FileLog, rel: str, table: pa.Table) -> None:
    """zstd-compressed Parquet, row groups of 128k rows, no pandas metadata."""
    written.write(rel, parquet_bytes(table))


def parquet_bytes(table: pa.Table) -> bytes:
    """`table` as `write_parquet` writes it."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="zstd", row_group_size=128 * 1024,
        store_schema=False, write_statistics=True,
    )
    return sink.getvalue().to_pybytes()


@contextmanager
def parquet_beside(
    written: FileLog, tables: dict[str, Callable[[], pa.Table]]
) -> Iterator[None]:
    """Make and encode the Parquet files {rel: table maker} on a thread of their own while
    the `with` body runs (Arrow's encoders release the GIL: the JSON is made on the other
    core), then write them. They are logged before anything the body writes, in the order
    of `tables`, as if written first; if the body raises, none is written."""
    for rel in tables:
        written.files[rel] = {}  # the place in the log (and the manifest) they are due
    try:
        with ThreadPoolExecutor(1) as pool:
            encoded = {rel: pool.submit(lambda m: parquet_bytes(m()), make)
                       for rel, make in tables.items()}
            yield
        for rel, done in encoded.items():
            written.write(rel, done.result())
    except BaseException:
        for rel in tables:
            written.files.pop(rel, None)
        raise


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; keys keep the order they were built in."""
    return _ENCODER.encode(obj).encode()  # json.dumps with these options, less set-up


def _card_fragments(movies: pa.Table) -> list[str]:
    """Per row of `movies`, the members every JSON payload shows about the movie, in contract
    order, as `_fragment` gives them: {"movie_id", "title", "year", "genres", "imdb_id",
    "tmdb_id"} without the braces. Built from each column's JSON text (integers by Arrow,
    titles by the encoder, genres once per distinct string), not one dumps per movie."""
    ints = {c: _json_ints(movies[c]) for c in ("movie_id", "year", "imdb_id", "tmdb_id")}
    genres: dict[str | None, str] = {}
    for g in movies["genres"].unique().to_pylist():
        genres[g] = dumps(genre_list(g)).decode()
    encode = _ENCODER.encode
    return [
        f'"movie_id":{mid},"title":{encode(title)},"year":{year},"genres":{genres[g]},'
        f'"imdb_id":{imdb},"tmdb_id":{tmdb}'
        for mid, title, year, g, imdb, tmdb in zip(
            ints["movie_id"], movies["title"].to_pylist(), ints["year"],
            movies["genres"].to_pylist(), ints["imdb_id"], ints["tmdb_id"], strict=True,
        )
    ]


def _json_ints(column: pa.ChunkedArray) -> list[str]:
    """An integer column as JSON text per value: decimal digits, or null."""
    return pc.fill_null(pc.cast(column, pa.string()), "null").to_pylist()


def _fragment(obj: dict[str, Any]) -> str:
    """An object's members as JSON text without the braces, to splice into a larger object."""
    return dumps(obj).decode()[1:-1]


def write_assets(written: FileLog) -> None:
    """index.html beside json/ (the demo page, see `recs serve`) and the JSON Schemas."""
    assets = resources.files("recs") / "assets"
    written.write("index.html", (assets / "index.html").read_bytes())
    (written.root / JSON_ROOT / "schema").mkdir()
    for name in ("movie", "index", "changes", "search"):
        rel = f"{JSON_ROOT.as_posix()}/schema/{name}.schema.json"
        written.write(rel, (assets / "schema" / f"{name}.schema.json").read_bytes())


def movie_file_ids(files: dict[str, Any]) -> dict[int, str]:
    """{movie id: sha256} of the json/v1/movies/<id>.json entries of a manifest's file map."""
    prefix = f"{JSON_ROOT.as_posix()}/movies/"
    return {
        int(rel[len(prefix) : -len(".json")]): meta["sha256"]
        for rel, meta in files.items()
        if rel.startswith(prefix) and rel.endswith(".json")
    }


def write_changes(
    written: FileLog, run_id: str, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """json/v1/changes.json: movie lists added, removed and changed since `previous` (a
    manifest), so a CDN sync or cache purge can touch only those. Returns the payload."""
    now = movie_file_ids(written.files)
    before = movie_file_ids(previous["files"]) if previous else {}
    changes = {
        "run_id": run_id,
        "previous_run_id": previous["run_id"] if previous else None,
        "added": sorted(now.keys() - before.keys()),
        "removed": sorted(before.keys() - now.keys()),
        "changed": sorted(m for m in now.keys() & before.keys() if now[m] != before[m]),
        "unchanged": sum(1 for m in now.keys() & before.keys() if now[m] == before[m]),
    }
    written.write(f"{JSON_ROOT.as_posix()}/changes.json", dumps(changes))
    return changes


def precompress(written: FileLog, threads: int = 2) -> int:
    """A .gz sibling for every JSON file written so far (gzip -9, no timestamp, so the bytes
    are as stable as the file's own). For CDNs that serve precompressed files as is.
    threads: threads compressing (zlib releases the GIL) and writing. Logged in the order of
    the JSON files, as if made one by one."""
    first_gz: dict[str, str] = {}  # sha256 of the JSON -> its .gz, written once
    fresh, aliases = [], []
    for rel, meta in list(written.files.items()):
        if not rel.endswith(".json"):
            continue
        written.files[f"{rel}.gz"] = {}  # its place in the log, filled below
        if meta["sha256"] in first_gz:  # an IMDb alias: the same bytes, so the same .gz
            aliases.append((f"{rel}.gz", first_gz[meta["sha256"]]))
        else:
            first_gz[meta["sha256"]] = f"{rel}.gz"
            fresh.append(rel)
    root = written.root

    def compress(rel: str) -> tuple[str, bytes]:
        data = (root / rel).read_bytes()
        return f"{rel}.gz", gzip.compress(data, compresslevel=9, mtime=0)

    with ThreadPoolExecutor(threads) as pool:
        written.write_many(pool.map(compress, fresh), threads)
    written.link_many(aliases, threads)
    return len(fresh) + len(aliases)


def imdb_key(imdb_id: int) -> str:
    """IMDb's own form of an id: tt + at least 7 digits."""
    return f"tt{imdb_id:07d}"


def write_json(
    written: FileLog, movies: pa.Table, lists: RankedNeighbors,
    shared_genres: SharedGenres | None = None, threads: int = 4,
) -> int:
    """json/v1/movies/<id>.json per listed movie, json/v1/imdb/tt<id>.json, json/v1/index.json.

    Each movie's own members are encoded once and spliced into every list that shows it
    (the same bytes json.dumps would give, at a fraction of the cost for 10^5 files).
    Returns the number of movie files written. Names come only from integer ids. threads:
    threads creating the files (`FileLog.write_many`). A cluster writes the movie files range
    by range (`json_folders`, `movie_payloads` per range, then `write_json_links`): the same
    bytes.
    """
    started = time.perf_counter()
    json_folders(written)
    written.write_many(iter_movie_payloads(movies, lists, shared_genres), threads)
    write_json_links(written, movies, lists.movie_ids, threads)
    log.info("wrote %d JSON lists in %.2f s", len(lists.movie_ids), time.perf_counter() - started)
    return len(lists.movie_ids)


def json_folders(written: FileLog) -> None:
    """json/v1/movies and json/v1/imdb, before any movie file is written."""
    root = written.root / JSON_ROOT
    (root / "movies").mkdir(parents=True)
    (root / "imdb").mkdir()


def movie_file(movie_id: int) -> str:
    return f"{_MOVIES}{int(movie_id)}.json"


_MOVIES = f"{JSON_ROOT.as_posix()}/movies/"


def movie_payloads(
    movies: pa.Table, lists: RankedNeighbors, shared_genres: SharedGenres | None = None
) -> list[tuple[str, bytes]]:
    """`iter_movie_payloads` as a list, for callers that go over the files more than once."""
    return list(iter_movie_payloads(movies, lists, shared_genres))


def iter_movie_payloads(
    movies: pa.Table, lists: RankedNeighbors, shared_genres: SharedGenres | None = None
) -> Iterator[tuple[str, bytes]]:
    """(json/v1/movies/<id>.json, bytes) per list, in the order of `lists`, made
    PAYLOAD_CHUNK lists at a time (`FileLog.write_many` writes one chunk while the next is
    made): each file depends only on its own list and `movies`, so any range of lists gives
    the same bytes. A list ends at its first slot without a neighbour (id -1).

    The JSON text is spliced by Arrow's string kernels from per-slot pieces: each movie's
    members (`_card_fragments`), and the text of each distinct number and genre list, made
    once by Python (repr, as the f-string `{score!r}` writes it)."""
    frags = pa.array(_card_fragments(movies), pa.string())
    listed = np.logical_and.accumulate(lists.neighbor_ids >= 0, axis=1)
    rows = catalogue_rows(movies, lists.movie_ids)
    neighbours = catalogue_rows(movies, lists.neighbor_ids[listed])
    lengths = listed.sum(axis=1)
    distinct, pair = (shared_genres or SharedGenres()).of_pairs(
        movies, np.repeat(rows, lengths), neighbours)
    ranks = pa.array([f'{{"rank":{r},' for r in range(1, listed.shape[1] + 1)], pa.string())
    pieces = [  # per listed slot, in list order, the text of its JSON item
        ranks.take(np.flatnonzero(listed) % listed.shape[1]), frags.take(neighbours),
        ',"score":', decimal_texts(lists.scores[listed]),
        ',"cosine":', decimal_texts(lists.cosine[listed]),
        ',"co_watchers":', pc.cast(lists.co_watchers[listed], pa.string()),
        ',"close_watchers":', pc.cast(lists.close_watchers[listed], pa.string()),
        ',"next_watchers":', pc.cast(lists.next_watchers[listed], pa.string()),
        ',"shared_genres":', _list_texts(distinct).take(pair), "}",
    ]
    ends = np.concatenate([[0], np.cumsum(lengths)])
    for lo in range(0, len(rows), PAYLOAD_CHUNK):
        hi = min(lo + PAYLOAD_CHUNK, len(rows))
        a, b = int(ends[lo]), int(ends[hi])
        items = pc.binary_join_element_wise(
            *(p if isinstance(p, str) else p[a:b] for p in pieces), "")
        similar = pc.binary_join(
            pa.ListArray.from_arrays(pa.array(ends[lo : hi + 1] - a, pa.int32()), items), ",")
        texts = pc.binary_join_element_wise(
            "{", frags.take(rows[lo:hi]), ',"similar":[', similar, "]}", "")
        offsets = np.frombuffer(texts.buffers()[1], np.int32, hi - lo + 1, texts.offset * 4)
        data = texts.buffers()[2].to_pybytes()
        for mid, start, stop in zip(lists.movie_ids[lo:hi].tolist(), offsets[:-1].tolist(),
                                    offsets[1:].tolist(), strict=True):
            yield movie_file(mid), data[start:stop]


PAYLOAD_CHUNK = 2048  # lists spliced per step: a few MB of text


def _list_texts(lists: list[list[str]]) -> pa.Array:
    """dumps of each list of strings, as strings; each distinct list encoded once."""
    text: dict[tuple[str, ...], str] = {}
    for g in lists:
        if tuple(g) not in text:
            text[tuple(g)] = dumps(g).decode()
    return pa.array([text[tuple(g)] for g in lists], pa.string())


def decimal_texts(values: np.ndarray) -> pa.Array:
    """repr(round(float(v), 4)) per value (as numpy rounds: float64, then 4 decimals), as
    strings, without a repr per value.

    When v rounded is k / 10^4 exactly (k an integer below 10^15 in size), its repr is that
    decimal: the integer part, '.', the 4 digits of the fraction without trailing zeros
    ('0' if none), '-' before a negative value or -0.0. Other values (inf, nan, huge) are
    formatted by repr."""
    rounded = np.round(values.astype(np.float64), 4)
    short = short_decimals(rounded)
    if short is not None:
        return short
    return pa.array([repr(v) for v in rounded.tolist()], pa.string())


def short_decimals(rounded: np.ndarray) -> pa.Array | None:
    """`decimal_texts` of values already rounded to 4 decimals, spliced by Arrow; None unless
    every value is k / 10^4 exactly (|k| < 10^15)."""
    with np.errstate(invalid="ignore"):
        steps = np.rint(rounded * 1e4)
        exact = np.isfinite(steps) & (np.abs(steps) < 1e15) & (steps / 1e4 == rounded)
    if not exact.all():
        return None
    whole, fraction = np.divmod(np.abs(steps).astype(np.int64), 10_000)
    sign = pa.array(np.signbit(rounded)).cast(pa.int8())
    return pc.binary_join_element_wise(
        _SIGNS.take(sign), pc.cast(whole, pa.string()), ".", _FRACTIONS.take(fraction), "")


_SIGNS = pa.array(["", "-"], pa.string())
_FRACTIONS = pa.array([f"{i:04d}".rstrip("0") or "0" for i in range(10_000)], pa.string())


def write_json_links(
    written: FileLog, movies: pa.Table, movie_ids: np.ndarray, threads: int = 4
) -> None:
    """json/v1/imdb/tt<id>.json links to the movie files already written, json/v1/index.json
    and the search shards (`write_json_index`); movie_ids: the listed movies, ascending.
    threads: threads making the links (`FileLog.link_many`)."""
    with ThreadPoolExecutor(1) as pool:  # the index is made (Python) while the kernel links
        index = pool.submit(json_index, movies, movie_ids)
        written.link_many(imdb_aliases(movies, movie_ids).items(), threads)
        _write_index(written, *index.result())


def imdb_aliases(movies: pa.Table, movie_ids: np.ndarray) -> dict[str, str]:
    """{json/v1/imdb/tt<id>.json: json/v1/movies/<movie_id>.json} for the listed movie_ids
    (ascending). Two movies can share an IMDb id in links.csv: the lower movie id keeps it."""
    imdb_ids = movies["imdb_id"].take(catalogue_rows(movies, movie_ids)).to_pylist()
    aliases: dict[str, str] = {}
    imdb_folder = f"{JSON_ROOT.as_posix()}/imdb/"
    for mid, imdb in zip(movie_ids.tolist(), imdb_ids, strict=True):
        if imdb is not None:
            aliases.setdefault(f"{imdb_folder}{imdb_key(imdb)}.json", movie_file(mid))
    return aliases


def write_json_index(written: FileLog, movies: pa.Table, movie_ids: np.ndarray) -> None:
    """json/v1/index.json and the search shards (`write_search_index`) of the listed movies."""
    _write_index(written, *json_index(movies, movie_ids))


def json_index(
    movies: pa.Table, movie_ids: np.ndarray
) -> tuple[bytes, list[dict[str, Any]], list[tuple[str, bytes]]]:
    """index.json's bytes, its entries ({"movie_id", "title", "year"} per listed movie) and
    the search shards' (path, bytes) (`search_files`); movie_ids: the listed movies,
    ascending."""
    listed = movies.take(catalogue_rows(movies, movie_ids))
    index = [{"movie_id": m, "title": title, "year": year} for m, title, year in zip(
        movie_ids.tolist(), listed["title"].to_pylist(), listed["year"].to_pylist(), strict=True)]
    frags = [search_entry(e["movie_id"], e["title"], e["year"]) for e in index]
    text = '{"version":1,"movies":[' + ",".join(frags) + "]}"  # dumps of it, spliced
    return text.encode(), index, search_files(index, frags=frags)


def _write_index(
    written: FileLog, index: bytes, entries: list[dict[str, Any]],
    shards: list[tuple[str, bytes]],
) -> None:
    """Write what `json_index` made: json/v1/index.json, then the search shards."""
    written.write(JSON_ROOT / "index.json", index)
    write_search_index(written, entries, shards)


# The search index (docs/output-contract.md, "Search shards"): a tree of shards keyed by the
# start of a title word. A shard with at most SEARCH_LEAF titles lists them all; a bigger one
# lists its first SEARCH_HEAD, names the longer keys it splits into, and keeps the titles no
# longer key holds (the word is the key itself) in pages of SEARCH_LEAF.
SEARCH_LEAF = 400  # titles a shard lists in full; also titles per page
SEARCH_HEAD = 20  # titles a split shard lists: the demo page's LIMIT
SEARCH_DEPTH = 16  # longest key in characters (file names stay short); such a shard never splits
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def title_words(title: str) -> list[str]:
    """The words a title is found by, in title order: runs of letters and digits after NFKD,
    dropping combining marks and lower-casing (str.lower, the demo page's toLowerCase; not
    casefold, which JavaScript lacks). 'Léon: The Professional (1994)' -> ['leon', 'the',
    'professional', '1994']. The demo page cuts a query with the same rules (its `words`)."""
    if title.isascii():  # no marks, NFKD changes nothing: the common case, 10x faster
        return _ASCII_WORD.findall(title.lower())
    kept = (c for c in unicodedata.normalize("NFKD", title) if unicodedata.category(c)[0] != "M")
    # lower-cased before the punctuation goes, as on the page: a final sigma depends on it
    text = "".join(kept).lower()
    return "".join(ch if unicodedata.category(ch)[0] in "LN" else " " for ch in text).split()


def search_file(key: str, page: int = 0) -> str:
    """Path of the shard `key` ('' is the root: json/v1/search.json), or of its page (1, 2, ...).

    The key percent-encoded as UTF-8 with '%' written as '_' (the demo page's
    encodeURIComponent(key).replace(/%/g, "_")): only [a-z0-9_] reach the file name."""
    if not key:
        return f"{JSON_ROOT.as_posix()}/search.json"
    name = quote(key, safe="").replace("%", "_")
    return f"{JSON_ROOT.as_posix()}/search/{name}{f'.{page}' if page else ''}.json"


class _Postings:
    """Every (word, title) pair of a catalogue, for slicing by key prefix. Titles are rows of
    the catalogue (ascending movie id), so sets of them are sorted row arrays.

    words: the distinct words, sorted by code point, so the words starting with a key are one
    range of them; rows: title rows by (word, row), word_start[w]:word_start[w + 1] being word
    w's; first: per row, the index of its title's first word (-1: none)."""

    def __init__(self, titles: list[str]) -> None:
        split = [title_words(t) for t in titles]
        self.words = sorted({w for ws in split for w in ws})
        at = {w: i for i, w in enumerate(self.words)}
        word_of = np.fromiter((at[w] for ws in split for w in ws), np.int64)
        row_of = np.repeat(np.arange(len(titles), dtype=np.int64), [len(ws) for ws in split])
        span = len(titles) + 1
        # one int64 per pair, ordered by (word, row); a word twice in a title counts once
        word_of, self.rows = np.divmod(distinct(word_of * span + row_of), span)
        self.word_start = np.searchsorted(word_of, np.arange(len(self.words) + 1))
        self.first = np.array([at[ws[0]] if ws else -1 for ws in split], dtype=np.int64)
        self._seen = np.zeros(len(titles), dtype=bool)

    def titles(self, lo: int, hi: int) -> np.ndarray:
        """Rows of the titles with a word in words[lo:hi], ascending."""
        rows = self.rows[self.word_start[lo] : self.word_start[hi]]
        if len(rows) * 16 < len(self._seen):  # few: sorting them beats a pass over every row
            return distinct(rows)
        self._seen[rows] = True
        found = np.flatnonzero(self._seen)
        self._seen[found] = False
        return found

    def display_order(self, rows: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """`rows` (ascending) with the titles whose first word is in words[lo:hi] first."""
        starts = (self.first[rows] >= lo) & (self.first[rows] < hi)
        return np.concatenate([rows[starts], rows[~starts]])

    def splits(self, key: str, lo: int, hi: int) -> list[tuple[str, int, int]]:
        """(next character, lo, hi) per longer key under `key`: words[lo:hi] all start with
        `key`, so the words continuing with one character are a run of them."""
        depth, found = len(key), []
        for i in range(lo, hi):
            if len(self.words[i]) > depth:
                char = self.words[i][depth]
                if found and found[-1][0] == char:
                    found[-1][2] = i + 1
                else:
                    found.append([char, i, i + 1])
        return [(c, a, b) for c, a, b in found]


def search_entry(movie_id: int, title: str, year: int | None) -> str:
    """dumps({"movie_id", "title", "year"}) as text, without a dumps call per title (10^6
    of them at a million titles)."""
    return (f'{{"movie_id":{int(movie_id)},"title":{_ENCODER.encode(title)},'
            f'"year":{"null" if year is None else int(year)}}}')


def search_files(
    entries: list[dict[str, Any]], leaf: int = SEARCH_LEAF, head: int = SEARCH_HEAD,
    frags: list[str] | None = None,
) -> list[tuple[str, bytes]]:
    """(path, bytes) of every search shard and page for `entries` (index.json's movies:
    movie_id, title, year; ascending movie_id), in path order. frags: each entry's
    `search_entry` text, if already made.

    Shard: {"key", "count", "children", "pages", "movies"}: `count` titles have a word
    starting with `key`; `movies` lists all of them (count <= leaf, or at SEARCH_DEPTH) or the
    first `head`, titles whose first word starts with `key` first, then by movie id;
    `children`: the characters that continue `key` into a longer shard; `pages`: how many
    page files hold the titles no child holds. Page: {"key", "page", "movies"}, by movie id.
    A title with no letter or digit is in no shard.
    """
    if frags is None:
        frags = [search_entry(e["movie_id"], e["title"], e["year"]) for e in entries]
    postings = _Postings([e["title"] for e in entries])
    files: list[tuple[str, bytes]] = []
    todo = [("", 0, len(postings.words))]  # (key, lo, hi): words[lo:hi] start with key
    while todo:
        key, lo, hi = todo.pop()
        shard, listed, pages, children = _shard(postings, key, lo, hi, leaf, head)
        files.append((search_file(key), _with_movies(shard, listed, frags)))
        files += [(search_file(key, n), _with_movies({"key": key, "page": n}, part, frags))
                  for n, part in enumerate(pages, 1)]  # fmt: skip
        todo += [(key + char, a, b) for char, a, b in children]
    return sorted(files)


def _shard(
    postings: _Postings, key: str, lo: int, hi: int, leaf: int, head: int
) -> tuple[dict[str, Any], np.ndarray, list[np.ndarray], list[tuple[str, int, int]]]:
    """Shard `key` (words[lo:hi] start with it): its members but "movies", the rows it lists,
    the rows of each of its pages, and its children as (character, lo, hi)."""
    found = postings.titles(lo, hi)
    order = postings.display_order(found, lo, hi)
    children = postings.splits(key, lo, hi)
    if len(found) <= leaf or len(key) >= SEARCH_DEPTH:
        listed, children, rest = order, [], found[:0]
    else:  # the word `key` itself, if a title has it, sorts first among words[lo:hi]
        listed, exact = order[:head], postings.words[lo] == key
        rest = (np.setdiff1d(postings.titles(lo, lo + 1), postings.titles(lo + 1, hi),
                             assume_unique=True) if exact else found[:0])  # fmt: skip
    pages = [rest[i : i + leaf] for i in range(0, len(rest), leaf)]
    shard = {"key": key, "count": len(found), "children": [c for c, _, _ in children],
             "pages": len(pages)}  # fmt: skip
    return shard, listed, pages, children


def _with_movies(obj: dict[str, Any], rows: np.ndarray, frags: list[str]) -> bytes:
    """dumps({**obj, "movies": [the entries at `rows`]}), spliced from each entry's JSON."""
    movies = ",".join([frags[r] for r in rows.tolist()])
    return f'{{{_fragment(obj)},"movies":[{movies}]}}'.encode()


def write_search_index(
    written: FileLog, entries: list[dict[str, Any]],
    files: list[tuple[str, bytes]] | None = None,
) -> None:
    """json/v1/search.json and json/v1/search/*.json for index.json's `entries`; files:
    `search_files(entries)` if already made."""
    started = time.perf_counter()
    (written.root / JSON_ROOT / "search").mkdir()
    files = search_files(entries) if files is None else files
    written.write_many(files)
    log.info("wrote %d search shards for %d titles in %.2f s", len(files), len(entries),
             time.perf_counter() - started)
