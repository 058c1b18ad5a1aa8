"""Read a MovieLens folder with DuckDB: the sparse ratings matrix and the movie table.

Each CSV is read once, and checked on that same scan (recs.validate): a bad input raises
recs.errors.InputError with one line naming the file, the line and what to do; odd but usable
inputs (duplicate ratings, ratings of unlisted movies, missing links) are counted and logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from scipy import sparse

from recs.errors import InputError
from recs.sqlfiles import load_sql
from recs.validate import HEADERS, TABLES, Problem, check_file, check_loaded, odd_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ratings:
    """The users x movies ratings pivot, sparse, with the ids of its rows and columns.

    matrix: (n_users, n_movies) float32 CSR, 0.5-5.0 stars where rated, no stored zeros.
    user_ids: (n_users,) int64, ascending. movie_ids: (n_movies,) int64, ascending.
    """

    matrix: sparse.csr_array
    user_ids: NDArray[np.int64]
    movie_ids: NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    """A checked MovieLens folder: the matrix, the movie table, counts and odd-input notes.

    last_pairs: each user's last two rated movies as query_id -> target_id (n_users,) int64,
    the holdout of the nightly quality gate.

    counts: rows per file (ratings_rows, movies_rows, links_rows), ratings_used (matrix nnz),
    users, movies_rated (matrix columns), movies_listed, duplicates, unlisted_ratings,
    unlisted_movies. problems: odd-but-usable inputs found (see recs.validate).
    """

    ratings: Ratings
    movies: pa.Table
    counts: Mapping[str, int]
    problems: tuple[Problem, ...]
    last_pairs: Mapping[str, NDArray[np.int64]]


def connect(threads: int = 2) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a fixed thread count."""
    con = duckdb.connect(config={"threads": threads})
    return con


def load_tables(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """Create the temp tables `ratings`, `movies`, `links` from the CSVs in `folder`, checked.

    Returns the data rows per file name. Raises InputError on the first fatal problem: every
    file and header is checked before the first (big) scan, then each file right after its scan.
    """
    paths = {name: Path(folder) / name for name in HEADERS}
    for name, path in paths.items():
        check_file(path, name)
    rows: dict[str, int] = {}
    for name, path in paths.items():
        table = TABLES[name]
        try:
            con.execute(load_sql(table), {f"{table}_csv": str(path)})
        except duckdb.Error as err:
            first = str(err).splitlines()[0][:160]
            raise InputError(
                f"{path}: DuckDB cannot read it ({first}); check that it is a MovieLens CSV file"
            ) from None
        rows[name] = check_loaded(con, path, name)
    return rows


def build_matrix(con: duckdb.DuckDBPyConnection) -> tuple[Ratings, dict[str, Any]]:
    """The sparse pivot from the loaded tables, and what building it dropped.

    Returns (ratings, counts) with counts duplicates (rows dropped because their (user, movie)
    pair was rated again; the latest rating is kept), duplicate_example ((user_id, movie_id) or
    None), unlisted_ratings and unlisted_movies (ratings dropped: movie not in movies.csv).
    """
    con.execute(load_sql("user_index"))
    con.execute(load_sql("movie_index"))
    user_ids = con.sql("select user_id from user_index order by user_index").fetchnumpy()["user_id"]
    movie_ids = con.sql("select movie_id from movie_index order by movie_index").fetchnumpy()
    movie_ids = movie_ids["movie_id"]
    shape = (len(user_ids), len(movie_ids))
    n_rows = int(con.execute("select count(*) from ratings").fetchall()[0][0])
    cols = con.sql(load_sql("rating_triplets")).fetchnumpy()
    kept = len(cols["rating"])
    matrix = _csr(cols, shape)
    # the CSR build merges a repeated (row, column): fewer stored values than triplets is the
    # free test for duplicates; grouping every night would cost seconds on 25M ratings
    counts: dict[str, Any] = {
        "duplicates": kept - matrix.nnz, "duplicate_example": None,
        "unlisted_ratings": n_rows - kept, "unlisted_movies": 0,
    }
    if counts["duplicates"]:
        params = {"n_movies": max(shape[1], 1)}
        cols = con.execute(load_sql("rating_triplets_latest"), params).fetchnumpy()
        matrix = _csr(cols, shape)
        dup = np.flatnonzero(cols["n_rows"] > 1)
        first = dup[np.lexsort((cols["movie_index"][dup], cols["user_index"][dup]))[0]]
        counts["duplicate_example"] = (
            int(user_ids[cols["user_index"][first]]), int(movie_ids[cols["movie_index"][first]])
        )
    if counts["unlisted_ratings"]:
        counts["unlisted_movies"] = int(
            con.execute(load_sql("check_unlisted")).fetchall()[0][0]
        )
    ratings = Ratings(
        matrix=matrix,
        user_ids=user_ids.astype(np.int64),
        movie_ids=movie_ids.astype(np.int64),
    )
    return ratings, counts


def _csr(cols: Mapping[str, NDArray], shape: tuple[int, int]) -> sparse.csr_array:
    matrix = sparse.csr_array(
        (cols["rating"], (cols["user_index"], cols["movie_index"])), shape=shape, dtype=np.float32
    )
    matrix.sort_indices()
    return matrix


def ratings_matrix(con: duckdb.DuckDBPyConnection) -> Ratings:
    """Build the sparse pivot from the `ratings` and `movies` tables (duplicates: latest kept)."""
    return build_matrix(con)[0]


def movie_table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per movie in movies.csv: id, title, genres, year, imdb/tmdb ids, rating stats."""
    return con.sql(load_sql("movie_table")).to_arrow_table()


def load_dataset(folder: Path, threads: int = 2) -> Dataset:
    """Read and check the MovieLens folder `folder`; odd inputs are logged once per kind."""
    started = time.perf_counter()
    con = connect(threads)
    try:
        rows = load_tables(con, Path(folder))
        ratings, built = build_matrix(con)
        movies = movie_table(con)
        problems = tuple(odd_inputs(con, Path(folder), built))
        last = con.execute(load_sql("last_pairs")).fetchnumpy()
        last_pairs = {c: np.asarray(last[c], np.int64) for c in ("query_id", "target_id")}
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


def read_dataset(folder: Path, threads: int = 2) -> tuple[Ratings, pa.Table]:
    """The ratings matrix and movie table of the MovieLens folder `folder`, checked."""
    data = load_dataset(folder, threads)
    return data.ratings, data.movies
