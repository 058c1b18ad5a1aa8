"""Input checks for the reading stage: one-line errors for bad inputs, counts for odd ones.

Every check runs on the scan the job makes anyway. ratings.csv, movies.csv and links.csv are each
read once by DuckDB with explicit types and `store_rejects`: malformed rows are set aside with
their line and column instead of failing the scan. Then, cheapest first:

1. before DuckDB, per file: it exists, is not 0 bytes, and line 1 is exactly the MovieLens header
   (`userId,movieId,rating,timestamp`, `movieId,title,genres`, `movieId,imdbId,tmdbId`);
2. after the scan: the first rejected row, if any (wrong field count, unbalanced quote, text
   where a number belongs, bytes that are not UTF-8);
3. one aggregate over the loaded table: rows that break a value rule, and repeated movieIds.
   Only when it finds some does a second, text-only scan locate the first such row.

A table may instead be a Parquet file (ratings.parquet, ...; see recs.stages.source). It has no
header line and no text to parse, so check 1 becomes a check of its columns: each MovieLens column
is present by name (case-sensitive; order and extra columns do not matter) with one of the types
of PARQUET_TYPES, else one line names the file, the column, the type found and the types
expected. Check 2 has nothing to do (a file DuckDB cannot read at all is reported as such), and
check 3 is the same rules on the same loaded tables, locating the first bad row by its row number
in the file ("row 5", counted from 1) where a CSV gives its line.

Anything fatal raises recs.core.errors.InputError with one line: the file as given, the line (and
column), what is wrong, what to do, e.g.
`data/ratings.csv line 5, column 3: rating 7.0 is outside 0.5-5.0 stars; fix or remove the row`.

Fatal: a missing or empty (0 bytes, or header only) file; a header that is not exactly
MovieLens's; malformed CSV rows; bytes that are not UTF-8; ids (userId, movieId) that are empty,
not numbers, negative or not whole; an empty or non-numeric timestamp; a rating outside
0.5-5.0 or not a multiple of 0.5 (MovieLens ratings are half stars: a 3.7 means another scale or
a shifted column, so we stop rather than guess); imdbId/tmdbId that are not digits; a movieId
listed twice in movies.csv or in links.csv (the movie table would get two rows); a dataset too
small for the requested --dim or --top-k (`check_size`).

Odd but usable (the run goes on; each kind is counted, logged once, and listed by
`validate_folder`):
- the same (userId, movieId) rated more than once: the latest rating is kept (equal timestamps:
  the higher rating), the other rows are dropped;
- ratings of movies missing from movies.csv: dropped (there is no title to publish);
- links.csv rows with an empty imdbId or tmdbId: kept, the id is null;
- movies missing from links.csv: kept, both ids null; links of unlisted movies: ignored;
- listed movies nobody rated: in the movie table (0 ratings) but get no vector and no list.
Dropped data (duplicates, unlisted ratings) is logged as WARNING; missing links as INFO.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb

from recs.core.errors import InputError
from recs.core.sql import load_sql
from recs.core.types import Ratings

log = logging.getLogger(__name__)

HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ratings.csv": ("userId", "movieId", "rating", "timestamp"),
    "movies.csv": ("movieId", "title", "genres"),
    "links.csv": ("movieId", "imdbId", "tmdbId"),
})
# the temp table each file is loaded into (by sql/load/<table>.sql from the view <table>_file,
# see read_source)
TABLES: Mapping[str, str] = MappingProxyType({
    "ratings.csv": "ratings", "movies.csv": "movies", "links.csv": "links",
})
# the DuckDB types a Parquet column may have, per kind of MovieLens column; see PARQUET_TYPES
_INTEGERS = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
)
_TIMESTAMPS = (
    "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE",
)
# column -> (accepted DuckDB types, DECIMAL(p,s) accepted too, what the message says is expected).
# ids: any integer, or FLOAT/DOUBLE/DECIMAL holding whole numbers (a warehouse NUMBER(38,0) is a
# DECIMAL; each value is checked like a CSV's); rating: FLOAT, DOUBLE or DECIMAL (half stars do
# not fit an integer); timestamp: an integer of Unix seconds (MovieLens) or a TIMESTAMP (without
# a time zone read as UTC, floored to the second; sql/macros/unix_seconds.sql); title, genres:
# text; imdbId, tmdbId: text of digits (imdb's leading zeros kept) or any integer
_ID_TYPES = (_INTEGERS + ("FLOAT", "DOUBLE"), True, "an integer type, or DOUBLE or DECIMAL "
             "holding whole numbers")
PARQUET_TYPES: Mapping[str, tuple[tuple[str, ...], bool, str]] = MappingProxyType({
    "userId": _ID_TYPES,
    "movieId": _ID_TYPES,
    "rating": (("FLOAT", "DOUBLE"), True, "FLOAT, DOUBLE or DECIMAL (half stars, 0.5-5.0)"),
    "timestamp": (_INTEGERS + _TIMESTAMPS, False,
                  "an integer type (Unix seconds) or TIMESTAMP"),
    "title": (("VARCHAR",), False, "VARCHAR (string)"),
    "genres": (("VARCHAR",), False, "VARCHAR (string)"),
    "imdbId": (("VARCHAR",) + _INTEGERS, False, "VARCHAR (string of digits) or an integer type"),
    "tmdbId": (("VARCHAR",) + _INTEGERS, False, "VARCHAR (string of digits) or an integer type"),
})
_MAX_SHOWN = 40  # characters of a bad value quoted in a message
_BLOCK = 1 << 24  # bytes read at a time when counting lines
_ID_RULE = "ids are whole numbers >= 0"
_FIX_ROW = "fix or remove the row"


@dataclass(frozen=True)
class Problem:
    """One odd-but-usable input kind: a stable code, how many, and a one-line explanation."""

    code: str
    count: int
    message: str
    level: int = logging.WARNING

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "count": self.count, "message": self.message}


# --- 1. before DuckDB: the file and its header -------------------------------------------------


def is_parquet(path: Path) -> bool:
    """Whether `path` is read as Parquet (by its suffix), else as a MovieLens CSV."""
    return Path(path).suffix == ".parquet"


def check_file(path: Path, name: str) -> None:
    """`path` (a `name` from HEADERS) exists, is not empty, and line 1 is the exact header."""
    want = ",".join(HEADERS[name])
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        table = TABLES[name]
        raise InputError(
            f"{path}: {what}; the data folder needs {name} (MovieLens format, header '{want}') "
            f"or {table}.parquet (columns {', '.join(HEADERS[name])})"
        )
    try:
        with path.open("rb") as f:
            first = f.readline(1 << 16)
    except OSError as err:
        raise InputError(
            f"{path}: cannot be read ({err.strerror}); check the file and its permissions"
        ) from None
    if not first:
        raise InputError(
            f"{path}: the file is empty (0 bytes); it needs the header '{want}' and one row per "
            f"{_row_noun(name)}"
        )
    try:
        text = first.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path} line 1, byte {err.start + 1}: bytes that are not UTF-8 in the header; "
            f"save the file as UTF-8 with the header '{want}'"
        ) from None
    got = text.rstrip("\r\n")
    if got != want:
        raise InputError(f"{path} line 1: {_header_problem(got, HEADERS[name])}; fix the header")


def _header_problem(got: str, want: tuple[str, ...]) -> str:
    names = got.split(",")
    exact = f"it must be exactly '{','.join(want)}' (MovieLens format)"
    missing = [c for c in want if c not in names]
    extra = [c for c in names if c not in want]
    if not got.strip():
        return f"the header is empty; {exact}"
    other = [sep for sep in (";", "\t", "|") if sep in got]
    if "," not in got and other:
        return f"columns are separated by {other[0]!r}, not commas; {exact}"
    if [n.lower() for n in names] == [c.lower() for c in want]:
        return f"header '{_clip(got)}' has the wrong case; {exact}"
    if missing and not extra:
        return f"missing column {', '.join(missing)} (header is '{_clip(got)}'); {exact}"
    if extra and not missing:
        return f"unexpected column {', '.join(map(_clip, extra))}; {exact}"
    if not missing and not extra:
        return f"columns in the wrong order ('{_clip(got)}'); {exact}"
    return f"header is '{_clip(got)}'; {exact}"


def check_parquet(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> None:
    """Parquet `path` (for `name` from HEADERS) is a readable file holding each MovieLens column
    by name with an accepted type (PARQUET_TYPES); other columns are ignored. Reads metadata only.
    """
    want = HEADERS[name]
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise InputError(
            f"{path}: {what}; write {TABLES[name]} as one Parquet file with the columns "
            f"{', '.join(want)}"
        )
    try:
        found = _rows(con, load_sql("checks/parquet_columns"), {"parquet_path": str(path)})
    except duckdb.Error as err:
        raise unreadable(path, err) from None
    types = {row["column_name"]: row["column_type"] for row in found}
    for column in want:
        if column not in types:
            raise InputError(f"{path}: {_missing_column(column, list(types), want)}")
    for column in want:
        allowed, decimal, expected = PARQUET_TYPES[column]
        got = types[column]
        if got not in allowed and not (decimal and got.startswith("DECIMAL")):
            raise InputError(
                f"{path}, column {column}: type {_clip(got)} where {expected} is expected; "
                "write the column with one of those types"
            )


def _missing_column(column: str, names: list[str], want: tuple[str, ...]) -> str:
    """'what is wrong; what to do' for a MovieLens column absent from a Parquet file."""
    need = f"it needs the columns {', '.join(want)} (MovieLens names, any order)"
    near = [n for n in names if n.lower() == column.lower()]
    if near:
        return f"column {_clip(near[0])} has the wrong case; {need}: rename it to {column}"
    shown = _clip(", ".join(names), 120)
    return f"no column {column} (columns are {shown}); {need}: rename or add it"


def unreadable(path: Path, err: duckdb.Error) -> InputError:
    """The one-line error for a file DuckDB cannot read at all."""
    first = str(err).splitlines()[0][:160]
    kind = "Parquet" if is_parquet(path) else "MovieLens CSV"
    return InputError(
        f"{path}: DuckDB cannot read it ({first}); check that it is a {kind} file"
    )


def _row_noun(name: str) -> str:
    return {"ratings.csv": "rating", "movies.csv": "movie", "links.csv": "movie"}[name]


# --- 2. after the scan: rows DuckDB rejected ---------------------------------------------------


def check_rejects(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> None:
    """Raise on the first row DuckDB set aside while loading `path` (store_rejects)."""
    rows = con.execute(load_sql("checks/first_reject"), {"csv_path": str(path)}).fetchall()
    if not rows:
        return
    line, col_idx, col_name, kind, csv_line, message = rows[0]
    want = HEADERS[name]
    where = f"{path} line {line}"
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
        found = len(_fields(csv_line or ""))
        raise InputError(
            f"{where}: {found} fields where {len(want)} are expected ({','.join(want)}); "
            f"quote fields that contain commas, or {_FIX_ROW}"
        )
    if kind == "UNQUOTED VALUE":
        raise InputError(
            f"{where}, column {col_idx}: a quoted field is never closed (unbalanced \"); "
            "close the quote, double any \" inside it, or remove the row"
        )
    if kind == "INVALID ENCODING" or (kind == "CAST" and not _utf8_line(path, line)):
        raise InputError(
            f"{where}, column {col_idx} ({col_name}): bytes that are not UTF-8; save the file "
            "as UTF-8 (MovieLens files are UTF-8)"
        )
    if kind == "CAST":
        fields = _fields(csv_line or "")
        value = fields[col_idx - 1] if 0 < col_idx <= len(fields) else ""
        raise InputError(f"{where}, column {col_idx}: {_describe(col_name, value, 'not a number')}")
    first = (message or kind or "unreadable row").splitlines()[0]
    raise InputError(f"{where}: the row cannot be read ({_clip(first, 120)}); {_FIX_ROW}")


def _fields(csv_line: str) -> list[str]:
    """The fields of a rejected row's text. DuckDB gives a CRLF file's row with the previous
    line's LF in front (as the MovieLens files are), so the first non-empty line is the row."""
    row = next((line for line in (csv_line or "").splitlines() if line), "")
    return next(csv.reader(io.StringIO(row)), [])


def _utf8_line(path: Path, line: int) -> bool:
    """Whether physical line `line` (1-based) of `path` is valid UTF-8 (failure path only)."""
    with path.open("rb") as f:
        raw = next(itertools.islice(f, line - 1, None), b"")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- 3. value rules: cheap aggregate first, locate only on failure -----------------------------


def check_values(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> int:
    """Raise on the first row of `path` breaking a value rule; returns its number of rows.

    Runs sql/checks/<table>_counts.sql (one aggregate over the loaded table). Only when it counts
    bad rows does sql/checks/<table>_first_problem.sql scan the file again to find the first one.
    """
    table = TABLES[name]
    parquet = is_parquet(path)
    stats = _one_row(con, load_sql(f"checks/{table}_counts"))
    if stats["n_rows"] == 0:
        where = f"{path}: no rows" if parquet else f"{path} line 2: no rows after the header"
        raise InputError(f"{where}; the file needs one row per {_row_noun(name)}")
    if stats["n_bad"] == 0 and stats.get("n_duplicates", 0) == 0:
        return int(stats["n_rows"])
    read_source(con, path, table, text=True)
    found = _rows(con, load_sql(f"checks/{table}_first_problem"))
    if not found:  # the rules in the load and in field_problem disagree: still say what is known
        raise InputError(
            f"{path}: {stats['n_bad']} rows have an empty or invalid value; check the ids are "
            f"whole numbers >= 0 and ratings are 0.5-5.0 stars"
        )
    row = found[0]
    for idx, column in enumerate(HEADERS[name], start=1):
        problem = row.get(f"{column}_problem")
        if problem is None:
            continue
        # a Parquet file has no lines: the row in file order, and its columns go by name
        where = f"{path} {_place(path, row['record'])}, column {column if parquet else idx}"
        if problem == "duplicate":
            raise InputError(
                f"{where}: movieId {row[column]} is listed again (first on "
                f"{_place(path, row['first_record'])}); each movie must appear once: remove one "
                "of the rows"
            )
        raise InputError(f"{where}: {_describe(column, row[column], problem)}")
    raise AssertionError(f"checks/{table}_first_problem returned a row without a problem: {row}")


def _place(path: Path, record: int) -> str:
    """Where data row `record` (from 1) of `path` is: 'row N' in Parquet, 'line N' in a CSV."""
    return f"row {record}" if is_parquet(path) else f"line {line_of_record(path, int(record))}"


def read_source(
    con: duckdb.DuckDBPyConnection, path: Path, table: str, *, text: bool = False
) -> None:
    """Make the view `<table>_file` read `path`, the file of `table` (ratings, movies, links):
    its rows typed as sql/load expects them. With `text`, the view `<table>_text` instead: each
    field as text, with the row's record number (from 1, file order), for
    sql/checks/<table>_first_problem.

    The file's suffix picks the statement, sql/sources/<table>[_text]_<csv|parquet>.sql; the
    path is bound as its parameter ($<table>_csv or $<table>_parquet), so every statement reading
    the view is one for both formats. The file is scanned when a statement reads the view (a CSV
    with store_rejects: its malformed rows go to reject_errors then). Raises duckdb.Error when
    DuckDB cannot open the file (a Parquet file's metadata is read here).
    """
    fmt = "parquet" if is_parquet(path) else "csv"
    source = f"sources/{table}_text_{fmt}" if text else f"sources/{table}_{fmt}"
    view = f"{table}_text" if text else f"{table}_file"
    con.sql(load_sql(source), params={f"{table}_{fmt}": str(path)}).create_view(view)


def _describe(column: str, value: Any, problem: str) -> str:
    """'what is wrong; what to do' for one bad field."""
    shown = _clip(str(value)) if value is not None else ""
    if problem == "empty":
        return f"{column} is empty; fill it in or remove the row"
    if column == "rating":
        if problem == "out of range":
            return f"rating {shown} is outside 0.5-5.0 stars; {_FIX_ROW}"
        if problem == "not half star":
            return (
                f"rating {shown} is not a multiple of 0.5 (MovieLens ratings are half stars); "
                f"{_FIX_ROW}"
            )
        return f"rating '{shown}' is not a number; {_FIX_ROW}"
    if column == "timestamp":
        return f"timestamp '{shown}' is not a whole number of seconds; {_FIX_ROW}"
    if column in ("imdbId", "tmdbId"):
        return f"{column} '{shown}' is not digits; write the number only, or leave it empty"
    detail = {
        "negative": f"{column} {shown} is negative",
        "not whole": f"{column} {shown} is not a whole number",
        "too large": f"{column} {shown} is too large (ids must be below 9e15)",
    }.get(problem, f"{column} '{shown}' is not a number")
    return f"{detail}; {_ID_RULE}: {_FIX_ROW}"


def line_of_record(path: Path, record: int) -> int:
    """The physical line (1-based) where data row `record` (1-based, after the header) starts.

    Counts like DuckDB: empty lines are not rows, a quoted field may span lines ("" inside
    quotes is an escaped quote, so a line with an odd number of " opens or closes a field).
    Failure path only; reads up to that row, 16 MiB at a time: a block without any " or empty
    line is counted with bytes.count (~0.5 s for 25M rows), others line by line.
    """
    with path.open("rb") as f:
        f.readline()  # the header, checked to be exact
        line, seen, in_quote = 1, 0, False
        while block := f.read(_BLOCK):
            block += f.readline()  # end the block at a line end
            if not in_quote and b'"' not in block and not _has_empty_line(block):
                n = block.count(b"\n") + (not block.endswith(b"\n"))
                if seen + n >= record:
                    return line + record - seen
                line, seen = line + n, seen + n
                continue
            for raw in io.BytesIO(block):
                line += 1
                odd = raw.count(b'"') % 2 == 1
                if in_quote:  # this line continues a quoted field of the row before
                    in_quote = not odd
                    continue
                if not raw.rstrip(b"\r\n"):
                    continue
                seen += 1
                if seen == record:
                    return line
                in_quote = odd
    return record + 1


def _has_empty_line(block: bytes) -> bool:
    return block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    rows = cursor.fetchall()
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in rows]


def _one_row(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    return _rows(con, sql)[0]


def _clip(text: str, limit: int = _MAX_SHOWN) -> str:
    """`text` on one line, at most `limit` characters."""
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- the whole folder --------------------------------------------------------------------------


def check_input(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> None:
    """Check 1 for the file of `name` (from HEADERS): its header, or a Parquet file's columns."""
    if is_parquet(path):
        check_parquet(con, path, name)
    else:
        check_file(path, name)


def check_loaded(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> int:
    """Checks 2 and 3 for one loaded file; returns its number of data rows."""
    if not is_parquet(path):  # a Parquet read rejects no rows: it reads or it fails
        check_rejects(con, path, name)
    return check_values(con, path, name)


def odd_inputs(
    con: duckdb.DuckDBPyConnection, files: Mapping[str, Path], counts: Mapping[str, int]
) -> list[Problem]:
    """The odd-but-usable inputs: cross-file counts (sql/checks/odd_inputs.sql) plus `counts` from
    building the matrix (duplicates, unlisted_ratings, unlisted_movies, duplicate_example).
    files: the path read for each name of HEADERS (a .csv or .parquet)."""
    odd = _one_row(con, load_sql("checks/odd_inputs"))
    ratings, movies, links = (files[n] for n in ("ratings.csv", "movies.csv", "links.csv"))
    found: list[Problem] = []
    if counts.get("duplicates"):
        example = counts.get("duplicate_example")
        eg = f" (e.g. userId {example[0]}, movieId {example[1]})" if example else ""
        found.append(Problem(
            "duplicate_ratings", counts["duplicates"],
            f"{ratings}: {counts['duplicates']} rows rate a (userId, movieId) pair rated before"
            f"{eg}; kept the latest rating of each pair",
        ))
    if counts.get("unlisted_ratings"):
        found.append(Problem(
            "unlisted_ratings", counts["unlisted_ratings"],
            f"{ratings}: {counts['unlisted_ratings']} ratings of {counts.get('unlisted_movies', 0)}"
            f" movies missing from {movies} were dropped; add those movies to keep them",
        ))
    info = [
        ("movies_without_links", f"{movies}: {{n}} movies are missing from {links}; "
         "their imdb and tmdb ids are null"),
        ("links_without_movies", f"{links}: {{n}} rows are for movies not in {movies}; ignored"),
        ("links_without_imdb", f"{links}: {{n}} listed movies have no imdbId; imdb_id is null"),
        ("links_without_tmdb", f"{links}: {{n}} listed movies have no tmdbId; tmdb_id is null"),
        ("movies_unrated", f"{movies}: {{n}} movies have no ratings; they get no similar list"),
    ]
    for code, text in info:
        if odd[code]:
            found.append(Problem(code, int(odd[code]), text.format(n=odd[code]), logging.INFO))
    return found


def check_size(ratings: Ratings, dim: int, top_k: int) -> None:
    """Raise InputError when `ratings` is too small for `dim` or `top_k`.

    The truncated SVD needs dim < min(users, movies); each movie's list holds other movies,
    so top_k <= movies - 1.
    """
    n_users, n_movies = ratings.matrix.shape
    most_dim = min(n_users, n_movies) - 1
    if most_dim < 1 or n_movies < 2:
        raise InputError(
            f"the ratings cover {n_users} users x {n_movies} movies: too few to compare movies; "
            "use a dataset with at least 2 users and 3 rated movies"
        )
    if dim > most_dim:
        raise InputError(
            f"the ratings cover {n_users} users x {n_movies} movies, too small for --dim {dim}: "
            f"use --dim {most_dim} or less, or more data"
        )
    if top_k > n_movies - 1:
        raise InputError(
            f"only {n_movies} movies are rated, so a movie has at most {n_movies - 1} others: "
            f"use --top-k {n_movies - 1} or less, or more data"
        )

