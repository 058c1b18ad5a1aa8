"""Read a MovieLens folder with DuckDB: the sparse ratings matrix and the movie table."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from scipy import sparse

from recs.sqlfiles import load_sql

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


def connect(threads: int = 2) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a fixed thread count."""
    con = duckdb.connect(config={"threads": threads})
    return con


def load_tables(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Create the temp tables `ratings`, `movies`, `links` from the CSVs in `folder`."""
    con.execute(load_sql("ratings"), {"ratings_csv": str(folder / "ratings.csv")})
    con.execute(load_sql("movies"), {"movies_csv": str(folder / "movies.csv")})
    con.execute(load_sql("links"), {"links_csv": str(folder / "links.csv")})


def ratings_matrix(con: duckdb.DuckDBPyConnection) -> Ratings:
    """Build the sparse pivot from the `ratings` and `movies` tables."""
    con.execute(load_sql("user_index"))
    con.execute(load_sql("movie_index"))
    user_ids = con.sql("select user_id from user_index order by user_index").fetchnumpy()
    movie_ids = con.sql("select movie_id from movie_index order by movie_index").fetchnumpy()
    cols = con.sql(load_sql("rating_triplets")).fetchnumpy()
    shape = (len(user_ids["user_id"]), len(movie_ids["movie_id"]))
    matrix = sparse.csr_array(
        (cols["rating"], (cols["user_index"], cols["movie_index"])), shape=shape, dtype=np.float32
    )
    matrix.sort_indices()
    return Ratings(
        matrix=matrix,
        user_ids=user_ids["user_id"].astype(np.int64),
        movie_ids=movie_ids["movie_id"].astype(np.int64),
    )


def movie_table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per movie in movies.csv: id, title, genres, year, imdb/tmdb ids, rating stats."""
    return con.sql(load_sql("movie_table")).to_arrow_table()


def read_dataset(folder: Path, threads: int = 2) -> tuple[Ratings, pa.Table]:
    """The ratings matrix and movie table of the MovieLens folder `folder`."""
    started = time.perf_counter()
    con = connect(threads)
    try:
        load_tables(con, folder)
        ratings = ratings_matrix(con)
        movies = movie_table(con)
    finally:
        con.close()
    log.info(
        "read %d ratings from %d users on %d movies (%d listed) in %.2f s",
        ratings.matrix.nnz, ratings.matrix.shape[0], ratings.matrix.shape[1],
        movies.num_rows, time.perf_counter() - started,
    )
    return ratings, movies
