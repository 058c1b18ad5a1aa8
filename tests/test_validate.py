"""Bad inputs: each raises InputError with one line naming the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from recs.core.errors import InputError
from recs.core.types import Ratings
from recs.stages.ingest import read_dataset, validate_folder
from recs.stages.validate import check_size, line_of_record

RATINGS = (
    "userId,movieId,rating,timestamp\n"
    "1,10,4.0,100\n"
    "1,20,3.5,101\n"
    "2,10,5.0,102\n"
    "2,30,1.0,103\n"
    "3,20,2.5,104\n"
    "3,30,0.5,105\n"
)
MOVIES = (
    "movieId,title,genres\n"
    "10,Alpha (1990),Drama\n"
    '20,"Beta, The (1991)",Comedy\n'
    "30,Gamma (1992),Action|Drama\n"
)
LINKS = (
    "movieId,imdbId,tmdbId\n"
    "10,0000010,110\n"
    "20,0000020,120\n"
    "30,0000030,130\n"
)
GOOD = {"ratings.csv": RATINGS, "movies.csv": MOVIES, "links.csv": LINKS}


def make_folder(tmp_path: Path, **files: str | bytes | None) -> Path:
    """The good tiny dataset with some files replaced (text, raw bytes) or left out (None)."""
    folder = tmp_path / "data"
    folder.mkdir(parents=True)
    for name, good in GOOD.items():
        content = files.get(name.replace(".csv", ""), good)
        if content is None:
            continue
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / name).write_bytes(raw)
    return folder


def replace_line(text: str, line: int, new: str) -> str:
    """`text` with its 1-based line `line` replaced by `new`."""
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def fails(folder: Path) -> str:
    """The InputError message of reading `folder`, checked to be one line."""
    with pytest.raises(InputError) as info:
        read_dataset(folder)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message
    return message


# (case id, file, content, the line the message must name, words it must contain)
BAD_INPUTS = [
    ("header-missing-column", "ratings", "userId,movieId,rating\n1,10,4.0\n",
     "line 1", ["missing column timestamp", "userId,movieId,rating,timestamp"]),
    ("header-extra-column", "ratings", "userId,movieId,rating,timestamp,tag\n1,10,4.0,1,x\n",
     "line 1", ["unexpected column tag"]),
    ("header-renamed", "movies", "movieId,name,genres\n10,Alpha,Drama\n",
     "line 1", ["header is 'movieId,name,genres'", "movieId,title,genres"]),
    ("header-wrong-case", "links", "movieid,imdbid,tmdbid\n10,1,2\n",
     "line 1", ["wrong case"]),
    ("header-wrong-order", "ratings", "movieId,userId,rating,timestamp\n10,1,4.0,1\n",
     "line 1", ["wrong order"]),
    ("header-semicolons", "ratings", "userId;movieId;rating;timestamp\n1;10;4.0;1\n",
     "line 1", ["columns are separated by ';', not commas"]),
    ("header-only", "ratings", "userId,movieId,rating,timestamp\n",
     "line 2", ["no rows after the header"]),
    ("id-not-a-number", "ratings", replace_line(RATINGS, 3, "1,abc,3.5,101"),
     "line 3, column 2", ["movieId 'abc' is not a number"]),
    ("id-negative", "ratings", replace_line(RATINGS, 4, "-2,10,5.0,102"),
     "line 4, column 1", ["userId -2 is negative"]),
    ("id-not-whole", "ratings", replace_line(RATINGS, 5, "2,30.5,1.0,103"),
     "line 5, column 2", ["movieId 30.5 is not a whole number"]),
    ("id-empty", "ratings", replace_line(RATINGS, 2, ",10,4.0,100"),
     "line 2, column 1", ["userId is empty"]),
    ("id-nan", "ratings", replace_line(RATINGS, 2, "nan,10,4.0,100"),
     "line 2, column 1", ["userId 'nan' is not a number"]),
    ("movie-id-not-whole", "movies", replace_line(MOVIES, 4, "30.25,Gamma (1992),Action"),
     "line 4, column 1", ["movieId 30.25 is not a whole number"]),
    ("links-id-negative", "links", replace_line(LINKS, 2, "-10,0000010,110"),
     "line 2, column 1", ["movieId -10 is negative"]),
    ("rating-above-scale", "ratings", replace_line(RATINGS, 5, "2,30,7.0,103"),
     "line 5, column 3", ["rating 7.0 is outside 0.5-5.0 stars", "fix or remove the row"]),
    ("rating-zero", "ratings", replace_line(RATINGS, 2, "1,10,0,100"),
     "line 2, column 3", ["rating 0 is outside 0.5-5.0 stars"]),
    ("rating-not-half-star", "ratings", replace_line(RATINGS, 6, "3,20,3.7,104"),
     "line 6, column 3", ["rating 3.7 is not a multiple of 0.5"]),
    ("rating-not-a-number", "ratings", replace_line(RATINGS, 3, "1,20,good,101"),
     "line 3, column 3", ["'good' is not a number"]),
    ("rating-empty", "ratings", replace_line(RATINGS, 3, "1,20,,101"),
     "line 3, column 3", ["rating is empty"]),
    ("timestamp-not-a-number", "ratings", replace_line(RATINGS, 7, "3,30,0.5,yesterday"),
     "line 7, column 4", ["timestamp 'yesterday' is not a whole number of seconds"]),
    ("timestamp-empty", "ratings", replace_line(RATINGS, 7, "3,30,0.5,"),
     "line 7, column 4", ["timestamp is empty"]),
    ("unbalanced-quote", "movies", replace_line(MOVIES, 3, '20,"Beta, The (1991),Comedy'),
     "line 3, column 2", ["quoted field is never closed"]),
    ("too-many-fields", "ratings", replace_line(RATINGS, 4, "2,10,5.0,102,9"),
     "line 4", ["5 fields where 4 are expected"]),
    ("too-few-fields", "ratings", replace_line(RATINGS, 4, "2,10,5.0"),
     "line 4", ["3 fields where 4 are expected"]),
    ("unquoted-comma-in-title", "movies", replace_line(MOVIES, 3, "20,Beta, The (1991),Comedy"),
     "line 3", ["4 fields where 3 are expected", "quote fields that contain commas"]),
    ("duplicate-movie", "movies", MOVIES + "20,Beta again (1991),Comedy\n",
     "line 5, column 1", ["movieId 20 is listed again (first on line 3)"]),
    ("duplicate-link", "links", LINKS + "10,0000011,111\n",
     "line 5, column 1", ["movieId 10 is listed again (first on line 2)"]),
    ("imdb-not-digits", "links", replace_line(LINKS, 3, "20,tt0000020,120"),
     "line 3, column 2", ["imdbId 'tt0000020' is not digits"]),
    ("tmdb-not-digits", "links", replace_line(LINKS, 4, "30,0000030,1.5"),
     "line 4, column 3", ["tmdbId '1.5' is not digits"]),
]


@pytest.mark.parametrize(
    ("name", "content", "line", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_names_file_line_and_problem(
    tmp_path: Path, name: str, content: str, line: str, words: list[str]
) -> None:
    folder = make_folder(tmp_path, **{name: content})
    message = fails(folder)
    assert message.startswith(f"{folder / (name + '.csv')} {line}:"), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("name", "content", "line", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS if "\n" in case[2]],
)
def test_bad_input_in_a_crlf_file(
    tmp_path: Path, name: str, content: str, line: str, words: list[str]
) -> None:
    """The real MovieLens files end their lines with CRLF: the same messages, the value too."""
    folder = make_folder(tmp_path, **{name: content.replace("\n", "\r\n")})
    message = fails(folder)
    assert message.startswith(f"{folder / (name + '.csv')} {line}:"), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("name", ["ratings", "movies", "links"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    folder = make_folder(tmp_path, **{name: None})
    message = fails(folder)
    assert message.startswith(f"{folder / (name + '.csv')}: not found"), message
    assert "header" in message


def test_a_folder_named_like_the_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, ratings=None)
    (folder / "ratings.csv").mkdir()
    assert "ratings.csv: is not a file" in fails(folder)


@pytest.mark.parametrize("name", ["ratings", "movies", "links"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    folder = make_folder(tmp_path, **{name: b""})
    message = fails(folder)
    assert message.startswith(f"{folder / (name + '.csv')}: the file is empty (0 bytes)"), message


def test_bytes_not_utf8_in_a_text_field(tmp_path: Path) -> None:
    movies = MOVIES.encode().replace(b"Gamma", b"Gamm\xe9")  # Latin-1 e-acute
    message = fails(make_folder(tmp_path, movies=movies))
    assert "movies.csv line 4, column 2 (title): bytes that are not UTF-8" in message
    assert "save the file as UTF-8" in message


def test_bytes_not_utf8_in_a_number_field(tmp_path: Path) -> None:
    ratings = RATINGS.encode().replace(b"2,30,1.0,103", b"2,3\xff0,1.0,103")
    message = fails(make_folder(tmp_path, ratings=ratings))
    assert "ratings.csv line 5, column 2 (movieId): bytes that are not UTF-8" in message


def test_bytes_not_utf8_in_the_header(tmp_path: Path) -> None:
    ratings = b"user\xffId,movieId,rating,timestamp\n1,10,4.0,100\n"
    message = fails(make_folder(tmp_path, ratings=ratings))
    assert "ratings.csv line 1, byte 5: bytes that are not UTF-8 in the header" in message


def test_crlf_and_lf_read_the_same(tmp_path: Path) -> None:
    lf = read_dataset(make_folder(tmp_path / "lf"))
    crlf = read_dataset(make_folder(tmp_path / "crlf", **{
        n.replace(".csv", ""): t.replace("\n", "\r\n") for n, t in GOOD.items()
    }))
    assert (lf[0].matrix != crlf[0].matrix).nnz == 0
    assert lf[1].equals(crlf[1])
    assert not any("\r" in g for g in crlf[1].column("genres").to_pylist())


def test_crlf_error_names_the_right_line(tmp_path: Path) -> None:
    ratings = replace_line(RATINGS, 6, "3,20,9.5,104").replace("\n", "\r\n")
    message = fails(make_folder(tmp_path, ratings=ratings))
    assert "ratings.csv line 6, column 3: rating 9.5" in message


def test_line_counts_blank_lines_and_quoted_newlines(tmp_path: Path) -> None:
    # DuckDB skips the blank line and reads the title across two lines: the duplicate of movie
    # 10 is the 4th data row but starts on line 6 of the file
    movies = 'movieId,title,genres\n10,"Alpha\n(1990)",Drama\n\n20,Beta (1991),Comedy\n10,X,Y\n'
    message = fails(make_folder(tmp_path, movies=movies))
    assert "movies.csv line 6, column 1: movieId 10 is listed again (first on line 2)" in message
    assert line_of_record(make_folder(tmp_path / "x", movies=movies) / "movies.csv", 3) == 6


def test_first_bad_row_wins(tmp_path: Path) -> None:
    ratings = replace_line(replace_line(RATINGS, 6, "3,20,9.0,104"), 3, "1,20,-1,101")
    assert "line 3, column 3: rating -1 is outside" in fails(make_folder(tmp_path, ratings=ratings))


def test_validate_folder_reports_and_fails_like_the_run(tmp_path: Path) -> None:
    report = validate_folder(make_folder(tmp_path / "good"))
    assert report["ok"] and report["warnings"] == []
    assert report["counts"]["ratings_rows"] == 6 and report["counts"]["movies_listed"] == 3
    bad = make_folder(tmp_path / "bad", ratings=replace_line(RATINGS, 2, "1,10,6,100"))
    with pytest.raises(InputError, match=r"ratings.csv line 2, column 3: rating 6 is outside"):
        validate_folder(bad)


def _ratings(n_users: int, n_movies: int) -> Ratings:
    matrix = sparse.csr_array(np.ones((n_users, n_movies), np.float32))
    return Ratings(matrix, np.arange(n_users, dtype=np.int64), np.arange(n_movies, dtype=np.int64))


def test_check_size_dim_too_large() -> None:
    too_big = r"5 users x 40 movies, too small for --dim 8: use --dim 4 or less"
    with pytest.raises(InputError, match=too_big):
        check_size(_ratings(5, 40), dim=8, top_k=10)


def test_check_size_top_k_too_large() -> None:
    with pytest.raises(InputError, match=r"only 6 movies are rated.* use --top-k 5 or less"):
        check_size(_ratings(50, 6), dim=2, top_k=10)


def test_check_size_too_few_to_compare() -> None:
    with pytest.raises(InputError, match=r"too few to compare movies"):
        check_size(_ratings(1, 3), dim=1, top_k=1)


def test_check_size_accepts_the_limits() -> None:
    check_size(_ratings(5, 40), dim=4, top_k=39)


def test_blank_lines_before_a_bad_rating(tmp_path: Path) -> None:
    ratings = RATINGS.replace("2,10,5.0,102\n", "2,10,5.0,102\n\n\n") + "4,10,5.5,106\n"
    message = fails(make_folder(tmp_path, ratings=ratings))
    assert "ratings.csv line 10, column 3: rating 5.5 is outside" in message


@pytest.mark.parametrize("block", [1, 5, 1 << 24])
def test_line_of_record_matches_the_csv_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    import csv
    import random

    import recs.stages.validate

    monkeypatch.setattr(recs.stages.validate, "_BLOCK", block)  # small blocks cross every boundary
    rng = random.Random(block)
    for trial in range(40):
        rows = ["movieId,title,genres"]
        for i in range(rng.randint(1, 12)):
            rows.append(rng.choice(
                ["", f'{i},"two\nlines ""q""",G', f'{i},"a ""q""",G', f"{i},plain,G"]
            ))
        eol = rng.choice(["\n", "\r\n"])
        path = tmp_path / f"m{trial}.csv"
        path.write_bytes(eol.join(r.replace("\n", eol) for r in rows).encode() + b"\n")
        with path.open(newline="") as f:
            reader = csv.reader(f)
            next(reader)
            starts, start = [], reader.line_num + 1
            for fields in reader:
                if fields:
                    starts.append(start)
                start = reader.line_num + 1
        assert [line_of_record(path, k) for k in range(1, len(starts) + 1)] == starts


def test_a_file_duckdb_cannot_parse_is_one_line(tmp_path: Path) -> None:
    # a stray CRLF blank line in an LF file stops DuckDB's CSV state machine outright
    ratings = RATINGS.replace("2,10,5.0,102\n", "2,10,5.0,102\n\n\r\n")
    message = fails(make_folder(tmp_path, ratings=ratings))
    assert message.startswith(f"{tmp_path / 'data' / 'ratings.csv'}: DuckDB cannot read it (")
    assert "check that it is a MovieLens CSV file" in message
