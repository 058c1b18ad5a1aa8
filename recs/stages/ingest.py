"""Read a MovieLens folder with DuckDB: the sparse ratings matrix and the movie table.

Each table is ratings.csv or ratings.parquet (and so on; recs.stages.source.table_file): the
file's suffix picks a small statement of sql/sources that reads it, registered as one view per
table (recs.stages.validate.read_source: ratings_file, ...), and the statements of sql/load and
sql/checks read that view, one statement for both formats.

Each CSV is read once, and checked on that same scan (recs.stages.validate): a bad input raises
recs.core.errors.InputError with one line naming the file, the line and what to do; odd but usable
inputs (duplicate ratings, ratings of unlisted movies, missing links) are counted and logged.

load_dataset reads ratings.csv straight into narrow numpy columns
(sql/load/ratings_columns.sql) and builds the matrix (repeated pairs: the latest rating), the
per-movie stats and the last pairs in numpy, without a DuckDB table of the ratings. A file that
read cannot vouch for (a rejected or invalid row, an id >= 2^31, no rows) goes through the SQL
path (load_tables, build_matrix, ...), which names the problem; both paths give identical results
(tests/test_ingest.py). On 25M ratings the read is the CSV parse plus ~1 s of numpy, at half
the memory of the SQL path. A ratings.parquet takes the same fast path (the same
sql/load/ratings_columns.sql, on its view).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from scipy import sparse

from recs.core.sql import connect, load_sql
from recs.core.types import Ratings
from recs.stages.source import table_file
from recs.stages.validate import (
    TABLES,
    Problem,
    check_input,
    check_loaded,
    is_parquet,
    odd_inputs,
    read_source,
    unreadable,
)

log = logging.getLogger(__name__)

_LOOKUP_MAX = 1 << 24  # movie ids below this map through a lookup table (64 MiB at most)
_MAX_TIME = 10**14  # s: recency keys clamp times to this (as rating_triplets_latest)
_CHUNK = 1 << 22  # ratings per numpy pass where a pass over all would need float64 copies


@dataclass(frozen=True)
class Dataset:
    """A checked MovieLens folder: the matrix, the movie table, counts and odd-input notes.

    last_pairs: each user's last two rated movies as query_id -> target_id (n_users,) int64,
    the holdout of the nightly quality gate.

    counts: rows per file (ratings_rows, movies_rows, links_rows), ratings_used (matrix nnz),
    users, movies_rated (matrix columns), movies_listed, duplicates, unlisted_ratings,
    unlisted_movies. problems: odd-but-usable inputs found (see recs.stages.validate).
    """

    ratings: Ratings
    movies: pa.Table
    counts: Mapping[str, int]
    problems: tuple[Problem, ...]
    last_pairs: Mapping[str, NDArray[np.int64]]


def load_tables(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """Create the temp tables `ratings`, `movies`, `links` from the files in `folder`, checked.

    Returns the data rows per file name (HEADERS' names, ratings.csv also for ratings.parquet).
    Raises InputError on the first fatal problem: every file and header (a Parquet file's column
    types) is checked before the first (big) scan, then each file right after its scan.
    """
    return _load_tables(con, _check_files(con, folder))


def _load_tables(con: duckdb.DuckDBPyConnection, paths: Mapping[str, Path]) -> dict[str, int]:
    """load_tables on files already found and checked by _check_files."""
    return {name: _load_table(con, path, name) for name, path in paths.items()}


def _check_files(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, Path]:
    """The file of each name of HEADERS in `folder` (its .csv or its .parquet), each checked to
    exist with its header or, for Parquet, its columns and their types."""
    paths = {}
    for name, table in TABLES.items():
        path = table_file(Path(folder), table) or Path(folder) / name
        check_input(con, path, name)
        paths[name] = path
    return paths


def _load_table(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> int:
    """Load `path` (the file of `name` from HEADERS, .csv or .parquet) into its temp table,
    checked; returns its rows."""
    table = TABLES[name]
    try:
        read_source(con, path, table)
        con.execute(load_sql(f"load/{table}"))
    except duckdb.Error as err:
        raise unreadable(path, err) from None
    return check_loaded(con, path, name)


def build_matrix(con: duckdb.DuckDBPyConnection) -> tuple[Ratings, dict[str, Any]]:
    """The sparse pivot from the loaded tables, and what building it dropped.

    Returns (ratings, counts) with counts duplicates (rows dropped because their (user, movie)
    pair was rated again; the latest rating is kept), duplicate_example ((user_id, movie_id) or
    None), unlisted_ratings and unlisted_movies (ratings dropped: movie not in movies.csv).
    """
    con.execute(load_sql("load/user_index"))
    con.execute(load_sql("load/movie_index"))
    user_ids = con.sql("select user_id from user_index order by user_index").fetchnumpy()["user_id"]
    movie_ids = con.sql("select movie_id from movie_index order by movie_index").fetchnumpy()
    movie_ids = movie_ids["movie_id"]
    shape = (len(user_ids), len(movie_ids))
    n_rows = int(con.execute("select count(*) from ratings").fetchall()[0][0])
    cols = con.sql(load_sql("load/rating_triplets")).fetchnumpy()
    kept = len(cols["rating"])
    matrix, rated_at = _csr(cols, shape)
    # the CSR build merges a repeated (row, column): fewer stored values than triplets is the
    # free test for duplicates; grouping every night would cost seconds on 25M ratings
    counts: dict[str, Any] = {
        "duplicates": kept - matrix.nnz, "duplicate_example": None,
        "unlisted_ratings": n_rows - kept, "unlisted_movies": 0,
    }
    if counts["duplicates"]:
        params = {"n_movies": max(shape[1], 1)}
        cols = con.execute(load_sql("load/rating_triplets_latest"), params).fetchnumpy()
        matrix, rated_at = _csr(cols, shape)
        dup = np.flatnonzero(cols["n_rows"] > 1)
        first = dup[np.lexsort((cols["movie_index"][dup], cols["user_index"][dup]))[0]]
        counts["duplicate_example"] = (
            int(user_ids[cols["user_index"][first]]), int(movie_ids[cols["movie_index"][first]])
        )
    if counts["unlisted_ratings"]:
        counts["unlisted_movies"] = int(
            con.execute(load_sql("checks/unlisted_movies")).fetchall()[0][0]
        )
    ratings = Ratings(
        matrix=matrix,
        user_ids=user_ids.astype(np.int64),
        movie_ids=movie_ids.astype(np.int64),
        rated_at=rated_at,
    )
    return ratings, counts


def _csr(
    cols: Mapping[str, NDArray], shape: tuple[int, int]
) -> tuple[sparse.csr_array, NDArray[np.int64] | None]:
    """The float32 star matrix of triplets (user_index, movie_index, rating, rated_at) and the
    rated_at of each stored value (see csr_with_times)."""
    return csr_with_times(
        cols["user_index"], cols["movie_index"], cols["rating"], cols["rated_at"], shape
    )


def csr_with_times(
    rows: NDArray, cols: NDArray, stars: NDArray, rated_at: NDArray, shape: tuple[int, int]
) -> tuple[sparse.csr_array, NDArray[np.int64] | None]:
    """CSR float32 matrix (sorted indices) of `stars` at (rows, cols), all (n,), and the
    `rated_at` (n,) seconds of each stored value, aligned with its .data.

    A repeated (row, col) is merged into one value (nnz < n, stars summed): its time is then
    undefined and rated_at is None; callers that care read each pair once instead.
    """
    # a CSR of triplet numbers: after sorting, .data says which triplet each value came from
    at = sparse.csr_array((np.arange(len(rows), dtype=np.int64), (rows, cols)), shape=shape)
    if at.nnz < len(rows):
        matrix = sparse.csr_array((stars, (rows, cols)), shape=shape, dtype=np.float32)
        matrix.sort_indices()
        return matrix, None
    at.sort_indices()
    matrix = sparse.csr_array(
        (np.asarray(stars, np.float32)[at.data], at.indices, at.indptr), shape=shape
    )
    return matrix, np.asarray(rated_at, np.int64)[at.data]


def movie_table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per movie in movies.csv: id, title, genres, year, imdb/tmdb ids, rating stats."""
    con.execute(load_sql("load/rating_stats"))
    return con.sql(load_sql("load/movie_table")).to_arrow_table()


def load_dataset(folder: Path, threads: int = 2) -> Dataset:
    """Read and check the MovieLens folder `folder`; odd inputs are logged once per kind."""
    started = time.perf_counter()
    folder = Path(folder)
    con = connect(threads)
    try:
        paths = _check_files(con, folder)
        columns = _read_columns(con, paths["ratings.csv"])
        if columns is None:  # something to report: the SQL path names it, or reads the file
            log.debug("%s: read again by the SQL path", paths["ratings.csv"])
            con.close()
            con = connect(threads)
            parts = _parts_sql(con, paths)
        else:
            parts = _parts_numpy(con, paths, columns, threads)
        rows, ratings, built, movies, last_pairs = parts
        problems = tuple(odd_inputs(con, paths, built))
    finally:
        con.close()
    for problem in problems:
        log.log(problem.level, "%s", problem.message)
    counts = {
        "ratings_rows": rows["ratings.csv"],
        "movies_rows": rows["movies.csv"],
        "links_rows": rows["links.csv"],
        "ratings_used": int(ratings.matrix.nnz),
        "users": int(ratings.matrix.shape[0]),
        "movies_rated": int(ratings.matrix.shape[1]),
        "movies_listed": movies.num_rows,
        "duplicates": int(built["duplicates"]),
        "unlisted_ratings": int(built["unlisted_ratings"]),
        "unlisted_movies": int(built["unlisted_movies"]),
    }
    log.info(
        "read %d ratings from %d users on %d movies (%d listed) in %.2f s",
        ratings.matrix.nnz, ratings.matrix.shape[0], ratings.matrix.shape[1],
        movies.num_rows, time.perf_counter() - started,
    )
    return Dataset(
        ratings=ratings, movies=movies, counts=counts, problems=problems, last_pairs=last_pairs
    )


# (rows per file, ratings, build counts, movie table, last pairs)
_Parts = tuple[dict[str, int], Ratings, dict[str, Any], pa.Table, dict[str, NDArray[np.int64]]]


def _parts_sql(con: duckdb.DuckDBPyConnection, paths: Mapping[str, Path]) -> _Parts:
    """Everything from the temp tables (load_tables on the checked `paths`): the path that names
    bad inputs."""
    rows = _load_tables(con, paths)
    ratings, built = build_matrix(con)
    movies = movie_table(con)
    last = con.execute(load_sql("load/last_pairs")).fetchnumpy()
    last_pairs = {c: np.asarray(last[c], np.int64) for c in ("query_id", "target_id")}
    return rows, ratings, built, movies, last_pairs


@dataclass(frozen=True)
class _Columns:
    """ratings.csv as read by sql/load/ratings_columns.sql, grouped by user (file order within).

    user_id, movie_id: (n,) int32; half_stars: (n,) uint8, 1-10; rated_at: (n,) int64 seconds.
    """

    user_id: NDArray[np.int32]
    movie_id: NDArray[np.int32]
    half_stars: NDArray[np.uint8]
    rated_at: NDArray[np.int64]


def _read_columns(con: duckdb.DuckDBPyConnection, path: Path) -> _Columns | None:
    """ratings.csv (or .parquet) as columns, or None when a row was rejected or breaks a rule, an
    id does not fit int32, or there is no row: then the SQL path (load_tables) must look at it."""
    try:
        read_source(con, path, "ratings")
        cols = con.execute(load_sql("load/ratings_columns")).fetchnumpy()
    except duckdb.Error:
        return None
    user_id = cols["user_id"]
    if len(user_id) == 0 or user_id.min() < 0:
        return None
    if not is_parquet(path) and con.execute("select count(*) from reject_errors").fetchall()[0][0]:
        return None
    movie_id, half_stars, rated_at = cols["movie_id"], cols["half_stars"], cols["rated_at"]
    del cols
    # MovieLens files come sorted by user: check (50 ms) rather than sort
    if np.any(user_id[1:] < user_id[:-1]):
        order = group_order(user_id)
        user_id, movie_id = user_id[order], movie_id[order]
        half_stars, rated_at = half_stars[order], rated_at[order]
    return _Columns(user_id, movie_id, half_stars, rated_at)


def group_order(keys: NDArray[np.int32]) -> NDArray[np.intp]:
    """np.argsort(keys, kind="stable") for keys (n,) >= 0: a least-significant-digit radix
    sort, 16 bits a pass (numpy sorts 16-bit keys stably by radix, in linear time), so two
    passes for any int32; about twice as fast as the comparison sort on 25M shuffled ids."""
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    high = keys[order] >> 16
    if high.any():
        order = order[np.argsort(high.astype(np.uint16), kind="stable")]
    return order


def _parts_numpy(
    con: duckdb.DuckDBPyConnection, paths: Mapping[str, Path], cols: _Columns, threads: int
) -> _Parts:
    """Everything from the fast read's columns; movies and links load as in load_tables."""
    rows = {"ratings.csv": len(cols.user_id)}
    for name in ("movies.csv", "links.csv"):
        rows[name] = _load_table(con, paths[name], name)
    listed = con.sql("select movie_id from movies").fetchnumpy()["movie_id"]
    starts = np.flatnonzero(np.diff(cols.user_id)) + 1
    starts = np.r_[0, starts]
    user_ids = cols.user_id[starts].astype(np.int64)
    per_user = np.diff(np.r_[starts, len(cols.user_id)])
    # numpy releases the GIL in these passes: with 2+ threads the last pairs take another core
    # (0.3-0.5 s of ~1 s on 25M ratings) while this thread maps movies and builds the matrix
    with ThreadPoolExecutor(1) as pool:
        args = (starts, per_user, cols.movie_id, cols.rated_at)
        pairs = pool.submit(_last_pairs, *args) if threads > 1 else None
        movie_ids, col, built = _movie_columns(cols.movie_id, listed)
        stats = _rating_stats(movie_ids, col, cols.half_stars)
        # a CSR of row numbers: its .data says which row each stored value came from
        source = np.arange(len(col), dtype=np.int32 if len(col) < 2**31 else np.int64)
        at = _csr_grouped(starts, per_user, col, source, len(movie_ids))
        del source
        stars = cols.half_stars[at.data].astype(np.float32)
        stars *= np.float32(0.5)
        matrix = sparse.csr_array((stars, at.indices, at.indptr), shape=at.shape)
        rated_at = cols.rated_at[at.data]
        del at
        last_pairs = pairs.result() if pairs else _last_pairs(*args)
    if _has_repeats(matrix):  # a pair rated twice (rare): keep its latest rating
        del matrix, stars, rated_at
        matrix, rated_at, built = _latest_ratings(
            starts, per_user, col, cols, user_ids, movie_ids, built
        )
    ratings = Ratings(matrix=matrix, user_ids=user_ids, movie_ids=movie_ids, rated_at=rated_at)
    con.register("movie_index", pa.table({  # for checks/odd_inputs
        "movie_id": movie_ids, "movie_index": np.arange(len(movie_ids), dtype=np.int32),
    }))
    con.register("rating_stats", stats)
    movies = con.sql(load_sql("load/movie_table")).to_arrow_table()
    return rows, ratings, built, movies, last_pairs


def _movie_columns(
    movie_id: NDArray[np.int32], listed: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int32], dict[str, Any]]:
    """The matrix columns: rated movies listed in movies.csv, ascending.

    Returns (movie_ids (n_movies,) int64, col (n,) int32 column of each rating or -1 when its
    movie is not listed, counts as build_matrix gives them). Ids map through a lookup table
    when they are small (MovieLens: < 300k), else by binary search (2.5 s on 25M).
    """
    listed = np.unique(listed)
    top = max(int(movie_id.max()), int(listed[-1]) if len(listed) else 0)
    if top < _LOOKUP_MAX:
        rated = np.bincount(movie_id, minlength=top + 1) > 0
        is_listed = np.zeros(top + 1, bool)
        is_listed[listed] = True
        movie_ids = np.flatnonzero(rated & is_listed)
        lookup = np.full(top + 1, -1, np.int32)
        lookup[movie_ids] = np.arange(len(movie_ids), dtype=np.int32)
        col = lookup[movie_id]
        unlisted_movies = int(np.count_nonzero(rated & ~is_listed))
    else:
        # movies.csv has rows (check_values), so `listed` is not empty
        pos = np.minimum(np.searchsorted(listed, movie_id), len(listed) - 1).astype(np.int32)
        hit = listed[pos] == movie_id
        rated = np.bincount(pos[hit], minlength=len(listed)) > 0
        movie_ids = listed[rated]
        lookup = np.cumsum(rated, dtype=np.int32) - 1
        col = np.where(hit, lookup[pos], -1).astype(np.int32)
        unlisted_movies = len(np.unique(movie_id[~hit]))
    unlisted = int(np.count_nonzero(col < 0))
    built = {
        "duplicates": 0, "duplicate_example": None,
        "unlisted_ratings": unlisted, "unlisted_movies": unlisted_movies if unlisted else 0,
    }
    return movie_ids.astype(np.int64), col, built


def _rating_stats(
    movie_ids: NDArray[np.int64], col: NDArray[np.int32], half_stars: NDArray[np.uint8]
) -> pa.Table:
    """sql/load/rating_stats.sql for the matrix columns: (movie_id, n_ratings int32, mean_rating
    float32). Sums of half stars are exact in float64, so the mean rounds like DuckDB's avg."""
    n = np.zeros(len(movie_ids), np.int64)
    total = np.zeros(len(movie_ids), np.float64)
    for lo in range(0, len(col), _CHUNK):  # bincount's float64 weights, a chunk at a time
        part, stars = col[lo:lo + _CHUNK], half_stars[lo:lo + _CHUNK]
        if part.min(initial=0) < 0:  # ratings of unlisted movies
            listed = part >= 0
            part, stars = part[listed], stars[listed]
        n += np.bincount(part, minlength=len(movie_ids))
        total += np.bincount(part, weights=stars, minlength=len(movie_ids))
    return pa.table({
        "movie_id": movie_ids,
        "n_ratings": n.astype(np.int32),
        "mean_rating": (total * 0.5 / np.maximum(n, 1)).astype(np.float32),
    })


def _csr_grouped(
    starts: NDArray[np.intp], per_user: NDArray[np.intp], col: NDArray[np.int32],
    values: NDArray, n_movies: int,
) -> sparse.csr_array:
    """The CSR matrix of `values` (one per rating, grouped by user: `starts`, `per_user` give
    each user's first rating and count; `col` -1: dropped, movie not listed), sorted indices,
    a repeated (user, movie) pair kept twice. `values` is sorted in place, `col` is not."""
    keep = col >= 0
    if not keep.all():
        per_user = np.add.reduceat(keep.view(np.uint8), starts, dtype=np.int64)
        col, values = col[keep], values[keep]
    indptr = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(per_user, out=indptr[1:])
    index_dtype = np.int32 if len(col) < 2**31 else np.int64
    matrix = sparse.csr_array(
        (values, col.astype(index_dtype), indptr.astype(index_dtype)),  # sorted: `col` copied
        shape=(len(starts), n_movies),
    )
    matrix.sort_indices()
    return matrix


def _latest_ratings(
    starts: NDArray[np.intp], per_user: NDArray[np.intp], col: NDArray[np.int32],
    cols: _Columns, user_ids: NDArray[np.int64], movie_ids: NDArray[np.int64],
    built: dict[str, Any],
) -> tuple[sparse.csr_array, NDArray[np.int64], dict[str, Any]]:
    """sql/load/rating_triplets_latest.sql in numpy: the matrix with each (user, movie) pair once,
    holding its latest rating (equal times: the higher), that rating's time (aligned with the
    matrix's .data), and `built` with the duplicates.

    The recency key is the SQL's: time clamped to +-1e14 s, * 16, + half stars (1-10), so the
    largest key of a pair is its latest rating and key % 16 its half stars.
    """
    keys = np.clip(cols.rated_at, -_MAX_TIME, _MAX_TIME) * 16 + cols.half_stars
    keyed = _csr_grouped(starts, per_user, col, keys, len(movie_ids))
    del keys
    idx, ptr = keyed.indices, keyed.indptr
    first = np.ones(keyed.nnz, bool)  # the first rating of each (user, movie) pair
    first[1:] = idx[1:] != idx[:-1]
    first[ptr[:-1][ptr[:-1] < keyed.nnz]] = True  # a row's first value starts a pair
    runs = np.flatnonzero(first)
    latest = np.maximum.reduceat(keyed.data, runs)
    stars = (latest % 16).astype(np.float32)
    stars *= np.float32(0.5)
    rated_at = latest // 16
    new_ptr = np.r_[0, np.cumsum(first)][ptr].astype(idx.dtype)
    matrix = sparse.csr_array((stars, idx[runs], new_ptr), shape=keyed.shape)
    # the first repeated pair in (user, movie) order: the SQL path's example
    repeated = runs[np.flatnonzero(np.diff(np.r_[runs, keyed.nnz]) > 1)[0]]
    user = np.searchsorted(ptr, repeated, side="right") - 1
    built = dict(built, duplicates=keyed.nnz - matrix.nnz, duplicate_example=(
        int(user_ids[user]), int(movie_ids[idx[repeated]]),
    ))
    return matrix, rated_at, built


def _has_repeats(matrix: sparse.csr_array) -> bool:
    """Whether a row of `matrix` (sorted indices) holds the same column twice."""
    same = matrix.indices[1:] == matrix.indices[:-1]
    ends = matrix.indptr[1:-1]
    same[ends[(ends > 0) & (ends < matrix.nnz)] - 1] = False  # pairs across two rows
    return bool(same.any())


def _last_pairs(
    starts: NDArray[np.intp], per_user: NDArray[np.intp],
    movie_id: NDArray[np.int32], rated_at: NDArray[np.int64],
) -> dict[str, NDArray[np.int64]]:
    """sql/load/last_pairs.sql on columns grouped by user (`starts`, `per_user`): each user's two
    largest (rated_at, movie_id) keys; a user counts when both exist and name two movies."""
    t1 = np.maximum.reduceat(rated_at, starts)
    at_t1 = rated_at == np.repeat(t1, per_user)
    m1 = np.maximum.reduceat(np.where(at_t1, movie_id, -1), starts)
    top = at_t1 & (movie_id == np.repeat(m1, per_user))
    n_top = np.add.reduceat(top.view(np.uint8), starts, dtype=np.int64)
    t2 = np.maximum.reduceat(np.where(top, np.iinfo(np.int64).min, rated_at), starts)
    at_t2 = ~top & (rated_at == np.repeat(t2, per_user))
    m2 = np.maximum.reduceat(np.where(at_t2, movie_id, -1), starts)
    # two rows with the top key give the top movie twice: no pair, like recent[1] = recent[2]
    ok = (per_user >= 2) & (n_top == 1) & (m2 != m1)
    return {"query_id": m2[ok].astype(np.int64), "target_id": m1[ok].astype(np.int64)}


def read_dataset(folder: Path, threads: int = 2) -> tuple[Ratings, pa.Table]:
    """The ratings matrix and movie table of the MovieLens folder `folder`, checked."""
    data = load_dataset(folder, threads)
    return data.ratings, data.movies


def validate_folder(folder: Path, threads: int = 2) -> dict[str, Any]:
    """Run every input check on a MovieLens-latest folder and report; publishes nothing.

    Raises InputError on the first fatal problem. Returns {"folder", "ok": True, "counts":
    {rows per file, ratings_used, users, movies_rated, movies_listed}, "warnings": [{"code",
    "count", "message"}], "seconds"}.
    """
    started = time.perf_counter()
    data = load_dataset(Path(folder), threads)
    return {
        "folder": str(folder),
        "ok": True,
        "counts": dict(data.counts),
        "warnings": [p.as_dict() for p in data.problems],
        "seconds": round(time.perf_counter() - started, 3),
    }
