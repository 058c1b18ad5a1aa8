"""Parquet input: ratings.parquet, movies.parquet and links.parquet with MovieLens column names
read like the CSVs (mixed per table), their column types checked, bad rows named by row number."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_tiny, two_groups, write_dataset

from recs.core.errors import InputError
from recs.core.sql import connect
from recs.stages.ingest import Dataset, load_dataset
from recs.stages.source import resolve_data
from recs.stages.validate import read_source

TABLES = ("ratings", "movies", "links")


def tables(rows: list[tuple[int, int, float, int]] | None = None) -> dict[str, pa.Table]:
    """The tables write_dataset writes as CSV (same ids, titles, genres, links), as Arrow."""
    rows = rows or two_groups()
    movie_ids = sorted({m for _, m, _, _ in rows})
    users, movies, stars, times = zip(*rows, strict=True)
    return {
        "ratings": pa.table({
            "userId": pa.array(users, pa.int32()),
            "movieId": pa.array(movies, pa.int32()),
            "rating": pa.array(stars, pa.float64()),
            "timestamp": pa.array(times, pa.int64()),
        }),
        "movies": pa.table({
            "movieId": pa.array(movie_ids, pa.int64()),
            "title": [f"Movie {m} (20{m % 100:02d})" for m in movie_ids],
            "genres": ["Comedy|Drama" if m % 2 else "Drama" for m in movie_ids],
        }),
        "links": pa.table({
            "movieId": pa.array(movie_ids, pa.int32()),
            "imdbId": [f"{m:07d}" for m in movie_ids],
            "tmdbId": pa.array([m + 1000 for m in movie_ids], pa.int64()),
        }),
    }


def folder_with(
    folder: Path,
    parquet: dict[str, pa.Table],
    rows: list[tuple[int, int, float, int]] | None = None,
) -> Path:
    """The tiny CSV dataset in `folder`, with each table of `parquet` as <table>.parquet instead."""
    write_dataset(folder, rows or two_groups())
    for table, data in parquet.items():
        (folder / f"{table}.csv").unlink()
        pq.write_table(data, folder / f"{table}.parquet")
    return folder


def replaced(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    """`table` with `column` replaced by `values` (any type), in the same place."""
    return table.set_column(table.column_names.index(column), column, values)


def same_dataset(a: Dataset, b: Dataset) -> None:
    assert dict(a.counts) == dict(b.counts)
    assert (a.ratings.matrix != b.ratings.matrix).nnz == 0
    assert a.ratings.matrix.dtype == b.ratings.matrix.dtype
    np.testing.assert_array_equal(a.ratings.user_ids, b.ratings.user_ids)
    np.testing.assert_array_equal(a.ratings.movie_ids, b.ratings.movie_ids)
    np.testing.assert_array_equal(a.ratings.rated_at, b.ratings.rated_at)
    assert a.movies.equals(b.movies)
    for key in ("query_id", "target_id"):
        np.testing.assert_array_equal(a.last_pairs[key], b.last_pairs[key])
    assert [(p.code, p.count) for p in a.problems] == [(p.code, p.count) for p in b.problems]


def fails(folder: Path) -> str:
    with pytest.raises(InputError) as info:
        load_dataset(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def csv_data(tmp_path: Path) -> Dataset:
    return load_dataset(write_dataset(tmp_path / "csv", two_groups()))


# --- folders: all Parquet, mixed, both formats ------------------------------------------------


@pytest.mark.parametrize("as_parquet", [
    ("ratings",), ("movies",), ("links",), ("movies", "links"), ("ratings", "movies", "links"),
])
@pytest.mark.slow  # a sweep of whole datasets
def test_parquet_and_mixed_folders_read_like_the_csvs(tmp_path, csv_data, as_parquet):
    parquet = {t: data for t, data in tables().items() if t in as_parquet}
    folder = folder_with(tmp_path / "mixed", parquet)
    assert resolve_data(str(folder), tmp_path / "cache") == folder
    same_dataset(load_dataset(folder), csv_data)


def test_parquet_ratings_take_the_fast_path(tmp_path, caplog):
    folder = folder_with(tmp_path / "pq", tables())
    with caplog.at_level("DEBUG", logger="recs.stages.ingest"):
        load_dataset(folder)
    assert "read again by the SQL path" not in caplog.text


def test_csv_and_parquet_of_one_table_are_refused(tmp_path):
    folder = write_dataset(tmp_path / "both", two_groups())
    pq.write_table(tables()["ratings"], folder / "ratings.parquet")
    want = (f"{folder}: holds both ratings.csv and ratings.parquet; remove the one that should "
            "not be read")
    with pytest.raises(InputError, match="^" + want):
        resolve_data(str(folder), tmp_path / "cache")
    assert want in fails(folder)


def test_a_missing_table_of_a_parquet_folder_is_named(tmp_path):
    folder = folder_with(tmp_path / "pq", tables())
    (folder / "links.parquet").unlink()
    with pytest.raises(InputError) as info:
        resolve_data(str(folder), tmp_path / "cache")
    assert str(info.value).startswith(
        f"{folder}: missing links.parquet (or .csv) beside ratings.parquet, movies.parquet;"
    )


@pytest.mark.parametrize("text", [False, True])
@pytest.mark.parametrize("table", TABLES)
def test_csv_and_parquet_sources_give_one_view_shape(tmp_path, table, text):
    """sql/sources/<table>[_text]_csv and _parquet feed the same sql/load or sql/checks
    statement: the same columns, types and rows (record numbers too)."""
    csv_folder = write_dataset(tmp_path / "csv", two_groups())
    pq_folder = folder_with(tmp_path / "pq", tables())
    view = f"{table}_text" if text else f"{table}_file"
    found = []
    for path in (csv_folder / f"{table}.csv", pq_folder / f"{table}.parquet"):
        con = connect()
        try:
            read_source(con, path, table, text=text)
            shape = con.execute(f"describe select * from {view}").fetchall()
            rows = con.execute(f"select * from {view}").fetchall()
        finally:
            con.close()
        found.append(([(c[0], c[1]) for c in shape], rows))
    assert found[0] == found[1]


def test_extra_columns_and_another_order_are_fine(tmp_path, csv_data):
    data = tables()
    ratings = data["ratings"]
    data["ratings"] = pa.table({
        "timestamp": ratings["timestamp"], "rating": ratings["rating"],
        "loaded_at": pa.array(["2024-01-01"] * ratings.num_rows),
        "movieId": ratings["movieId"], "userId": ratings["userId"],
    })
    same_dataset(load_dataset(folder_with(tmp_path / "pq", data)), csv_data)


# --- column types: the natural ones are read, others named ------------------------------------

SECONDS = np.array([t for *_, t in two_groups()], np.int64)
N = len(SECONDS)


def whole(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    return pa.array(values).cast(kind)


@pytest.mark.parametrize(("table", "column", "make"), [
    ("ratings", "userId", lambda t: whole(np.asarray(t["userId"]), pa.int8())),
    ("ratings", "userId", lambda t: whole(np.asarray(t["userId"]), pa.uint64())),
    ("ratings", "userId", lambda t: whole(np.asarray(t["userId"]), pa.float64())),
    ("ratings", "movieId", lambda t: whole(np.asarray(t["movieId"]), pa.decimal128(38, 0))),
    ("ratings", "movieId", lambda t: whole(np.asarray(t["movieId"]), pa.float32())),
    ("ratings", "rating", lambda t: t["rating"].cast(pa.float32())),
    ("ratings", "rating", lambda t: t["rating"].cast(pa.decimal128(3, 1))),
    ("ratings", "timestamp", lambda t: t["timestamp"].cast(pa.int32())),
    ("ratings", "timestamp", lambda t: pa.array(SECONDS, pa.timestamp("s"))),
    ("ratings", "timestamp", lambda t: pa.array(SECONDS * 1000 + 999, pa.timestamp("ms"))),
    ("ratings", "timestamp", lambda t: pa.array(SECONDS * 10**9, pa.timestamp("ns"))),
    ("ratings", "timestamp",  # the same instants, written in Paris time
     lambda t: pa.array(SECONDS * 10**6 + 5, pa.timestamp("us", tz="Europe/Paris"))),
    ("movies", "movieId", lambda t: t["movieId"].cast(pa.uint16())),
    ("movies", "title", lambda t: t["title"].cast(pa.large_string())),
    ("links", "imdbId", lambda t: pa.array([int(x) for x in t["imdbId"].to_pylist()])),
    ("links", "tmdbId", lambda t: t["tmdbId"].cast(pa.string())),
    ("links", "tmdbId", lambda t: t["tmdbId"].cast(pa.int32())),
])
@pytest.mark.slow  # a sweep of whole datasets
def test_natural_types_read_to_the_same_data(tmp_path, csv_data, table, column, make):
    data = tables()
    data[table] = replaced(data[table], column, make(data[table]))
    same_dataset(load_dataset(folder_with(tmp_path / "pq", data)), csv_data)


def test_timestamps_before_1970_and_fractions_floor_to_the_second(tmp_path):
    rows = [(u, m, r, t - 1_600_000_000) for u, m, r, t in two_groups()]
    data = tables(rows)
    stamps = np.array([t for *_, t in rows], np.int64) * 1000 + 400  # +0.4 s each
    data["ratings"] = replaced(data["ratings"], "timestamp", pa.array(stamps, pa.timestamp("ms")))
    got = load_dataset(folder_with(tmp_path / "pq", data, rows))
    want = load_dataset(write_dataset(tmp_path / "csv", rows))
    assert got.ratings.rated_at.min() < 0
    same_dataset(got, want)


EXPECT_ID = "an integer type, or DOUBLE or DECIMAL holding whole numbers is expected"
EXPECT_TEXT = "VARCHAR (string) is expected"
EXPECT_LINK = "VARCHAR (string of digits) or an integer type is expected"


@pytest.mark.parametrize(("table", "column", "kind", "found", "expected"), [
    ("ratings", "userId", pa.string(), "VARCHAR", EXPECT_ID),
    ("ratings", "movieId", pa.bool_(), "BOOLEAN", EXPECT_ID),
    ("ratings", "rating", pa.int64(), "BIGINT",
     "FLOAT, DOUBLE or DECIMAL (half stars, 0.5-5.0) is expected"),
    ("ratings", "timestamp", pa.float64(), "DOUBLE",
     "an integer type (Unix seconds) or TIMESTAMP is expected"),
    ("ratings", "timestamp", pa.string(), "VARCHAR",
     "an integer type (Unix seconds) or TIMESTAMP is expected"),
    ("ratings", "timestamp", pa.date32(), "DATE",
     "an integer type (Unix seconds) or TIMESTAMP is expected"),
    ("movies", "movieId", pa.string(), "VARCHAR", EXPECT_ID),
    ("movies", "title", pa.int64(), "BIGINT", EXPECT_TEXT),
    ("movies", "genres", pa.list_(pa.string()), "VARCHAR[]", EXPECT_TEXT),
    ("links", "movieId", pa.string(), "VARCHAR", EXPECT_ID),
    ("links", "imdbId", pa.float64(), "DOUBLE", EXPECT_LINK),
    ("links", "tmdbId", pa.float64(), "DOUBLE", EXPECT_LINK),
])
def test_a_wrong_column_type_names_file_column_found_and_expected(
    tmp_path, table, column, kind, found, expected
):
    data = tables()
    old = data[table][column]
    if pa.types.is_list(kind):
        new = pa.array([[v] for v in old.to_pylist()], kind)
    elif pa.types.is_date(kind):
        new = pa.array([dt.date(2020, 1, 1)] * len(old), kind)
    elif pa.types.is_boolean(kind):
        new = pa.array([True] * len(old), kind)
    elif kind == pa.string():
        new = pa.array([str(v) for v in old.to_pylist()], kind)
    else:  # numbers: 1, 2, ... (a title of numbers, ids that are fine apart from their type)
        new = pa.array(range(1, len(old) + 1)).cast(kind)
    data[table] = replaced(data[table], column, new)
    folder = folder_with(tmp_path / "pq", data)
    path = folder / f"{table}.parquet"
    assert fails(folder) == (
        f"{path}, column {column}: type {found} where {expected}; "
        "write the column with one of those types"
    )


def test_a_missing_column_and_a_wrong_case_are_named(tmp_path):
    data = tables()
    data["ratings"] = data["ratings"].drop_columns(["timestamp"])
    folder = folder_with(tmp_path / "missing", data)
    assert fails(folder) == (
        f"{folder / 'ratings.parquet'}: no column timestamp (columns are userId, movieId, "
        "rating); it needs the columns userId, movieId, rating, timestamp (MovieLens names, any "
        "order): rename or add it"
    )
    data = tables()
    data["links"] = data["links"].rename_columns(["movieId", "imdbid", "tmdbId"])
    folder = folder_with(tmp_path / "case", data)
    assert fails(folder) == (
        f"{folder / 'links.parquet'}: column imdbid has the wrong case; it needs the columns "
        "movieId, imdbId, tmdbId (MovieLens names, any order): rename it to imdbId"
    )


def test_a_file_that_is_not_parquet_empty_or_a_folder(tmp_path):
    folder = folder_with(tmp_path / "junk", tables())
    (folder / "movies.parquet").write_bytes(b"movieId,title,genres\n1,A,B\n")
    message = fails(folder)
    assert message.startswith(f"{folder / 'movies.parquet'}: DuckDB cannot read it (")
    assert message.endswith("; check that it is a Parquet file")

    data = tables()
    data["ratings"] = data["ratings"].slice(0, 0)
    folder = folder_with(tmp_path / "empty", data)
    assert fails(folder) == (
        f"{folder / 'ratings.parquet'}: no rows; the file needs one row per rating"
    )

    folder = folder_with(tmp_path / "spark", tables())
    (folder / "ratings.parquet").unlink()
    (folder / "ratings.parquet").mkdir()
    assert fails(folder) == (
        f"{folder / 'ratings.parquet'}: is a folder, not a file; write ratings as one Parquet "
        "file with the columns userId, movieId, rating, timestamp"
    )


# --- bad rows: named by their row number ------------------------------------------------------


def _set(table: pa.Table, column: str, row: int, value, kind: pa.DataType | None = None):
    """`table` with `column`'s value at 0-based `row` replaced (the column cast to `kind`)."""
    values = table[column].to_pylist()
    values[row] = value
    return replaced(table, column, pa.array(values, kind or table.schema.field(column).type))


@pytest.mark.parametrize(("table", "edit", "message"), [
    ("ratings", lambda t: _set(t, "rating", 2, 7.0),
     "row 3, column rating: rating 7.0 is outside 0.5-5.0 stars; fix or remove the row"),
    ("ratings", lambda t: _set(t, "rating", 4, 3.7),
     "row 5, column rating: rating 3.7 is not a multiple of 0.5 (MovieLens ratings are half "
     "stars); fix or remove the row"),
    ("ratings", lambda t: _set(t, "userId", 1, 2.5, pa.float64()),
     "row 2, column userId: userId 2.5 is not a whole number; ids are whole numbers >= 0: fix "
     "or remove the row"),
    ("ratings", lambda t: _set(t, "movieId", 9, -5),
     "row 10, column movieId: movieId -5 is negative; ids are whole numbers >= 0: fix or remove "
     "the row"),
    ("ratings", lambda t: _set(t, "timestamp", 3, None),
     "row 4, column timestamp: timestamp is empty; fill it in or remove the row"),
    ("movies", lambda t: _set(t, "movieId", 2, 10),
     "row 3, column movieId: movieId 10 is listed again (first on row 1); each movie must "
     "appear once: remove one of the rows"),
    ("links", lambda t: _set(t, "imdbId", 1, "tt0000011"),
     "row 2, column imdbId: imdbId 'tt0000011' is not digits; write the number only, or leave "
     "it empty"),
])
def test_a_bad_row_is_named_by_its_row_number(tmp_path, table, edit, message):
    data = tables()
    data[table] = edit(data[table])
    folder = folder_with(tmp_path / "pq", data)
    assert fails(folder) == f"{folder / f'{table}.parquet'} {message}"


def test_null_links_are_allowed_like_empty_csv_fields(tmp_path):
    data = tables()
    data["links"] = _set(_set(data["links"], "imdbId", 0, None), "tmdbId", 1, None)
    got = load_dataset(folder_with(tmp_path / "pq", data))
    assert {p.code: p.count for p in got.problems}.items() >= {
        ("links_without_imdb", 1), ("links_without_tmdb", 1),
    }


# --- the whole job: the same lists ------------------------------------------------------------


def file_sums(run_dir: Path) -> dict[str, str]:
    """sha256 of every published file except those that name the inputs or the run."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", "changes.json")
    }


@pytest.mark.slow
def test_csv_and_parquet_runs_publish_identical_files(tmp_path):
    csv = run_tiny(write_dataset(tmp_path / "csv", two_groups()), tmp_path / "a")
    parquet = run_tiny(folder_with(tmp_path / "pq", tables()), tmp_path / "b")
    assert file_sums(parquet.run_dir) == file_sums(csv.run_dir)
    assert set(parquet.manifest["source"]["files"]) == {
        "ratings.parquet", "movies.parquet", "links.parquet",
    }


def parquet_copy(src: Path, dest: Path) -> Path:
    """`src` (a MovieLens-latest CSV folder) as Parquet, imdbId kept as text, via DuckDB."""
    import duckdb

    dest.mkdir(parents=True)
    columns = {
        "ratings": {"userId": "INTEGER", "movieId": "INTEGER", "rating": "DOUBLE",
                    "timestamp": "BIGINT"},
        "movies": {"movieId": "INTEGER", "title": "VARCHAR", "genres": "VARCHAR"},
        "links": {"movieId": "INTEGER", "imdbId": "VARCHAR", "tmdbId": "BIGINT"},
    }
    con = duckdb.connect()
    try:
        for table, types in columns.items():
            con.execute(
                "copy (select * from read_csv($src, header = true, auto_detect = false, "
                "delim = ',', quote = '\"', escape = '\"', columns = $types)) to $dest",
                {"src": str(src / f"{table}.csv"), "types": types,
                 "dest": str(dest / f"{table}.parquet")},
            )
    finally:
        con.close()
    return dest


@pytest.mark.slow
def test_parquet_copy_of_ml_latest_small_publishes_the_csv_runs_bytes(
    small_run, ml_small: Path, tmp_path: Path
) -> None:
    from recs.jobs import nightly

    settings, csv = small_run
    data = parquet_copy(ml_small, tmp_path / "pq")
    parquet = nightly.run(settings.model_copy(update={
        "data": str(data), "out": str(tmp_path / "out"), "db": str(tmp_path / "db"),
    }))
    assert parquet.manifest["source"]["files"].keys() == {
        "ratings.parquet", "movies.parquet", "links.parquet",
    }
    want = file_sums(csv.run_dir)
    assert len(want) > 9724  # every list's JSON, the Parquet files, ...
    assert file_sums(parquet.run_dir) == want
