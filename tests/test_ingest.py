"""Reading a MovieLens folder: the sparse pivot, the movie table, and the odd-input policies."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from recs.core.sql import connect, load_sql
from recs.stages import ingest
from recs.stages.ingest import (
    build_matrix,
    load_dataset,
    load_tables,
    movie_table,
    read_dataset,
)

# duckdb's own dense pivot: the reference the sparse matrix is compared with
RATINGS_PIVOT = Path(__file__).resolve().parent / "sql" / "ratings_pivot.sql"
MOVIES = (
    "movieId,title,genres\n"
    "10,Alpha (1990),Drama\n"
    '20,"Beta, The (1991)",Comedy\n'
    '30,"The ""Gamma"" Story (1992)",Action|Drama\n'
    "40,Delta (1993),(no genres listed)\n"
)
LINKS = (
    "movieId,imdbId,tmdbId\n"
    "10,0000010,110\n"
    "20,0000020,120\n"
    "30,0000030,130\n"
    "40,0000040,140\n"
)


def write(folder: Path, ratings: str, movies: str = MOVIES, links: str = LINKS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + ratings)
    (folder / "movies.csv").write_text(movies)
    (folder / "links.csv").write_text(links)
    return folder


def dense(folder: Path) -> dict[tuple[int, int], float]:
    """{(userId, movieId): stars} of the matrix read_dataset builds."""
    ratings, _ = read_dataset(folder)
    coo = ratings.matrix.tocoo()
    return {
        (int(ratings.user_ids[r]), int(ratings.movie_ids[c])): float(v)
        for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
    }


def codes(folder: Path) -> dict[str, int]:
    return {p.code: p.count for p in load_dataset(folder).problems}


# --- the pivot ----------------------------------------------------------------------------------


def test_sparse_matrix_equals_duckdb_pivot(tmp_path: Path) -> None:
    # user 7 rated every movie, user 3 only one; movie ids sort differently as text ('100' < '20')
    movies = MOVIES + "100,Epsilon (1994),Drama\n"
    links = LINKS + "100,0000100,\n"
    rows = [(3, 20, 2.5), (7, 10, 4.0), (7, 20, 0.5), (7, 30, 5.0), (7, 40, 3.5), (7, 100, 1.0),
            (9, 100, 4.5), (9, 10, 3.0), (12, 40, 2.0)]
    folder = write(tmp_path, "".join(f"{u},{m},{r},{i}\n" for i, (u, m, r) in enumerate(rows)),
                   movies, links)
    con = connect()
    try:
        load_tables(con, folder)
        ratings, _ = build_matrix(con)
        cursor = con.execute(RATINGS_PIVOT.read_text(encoding="utf-8"))
        pivot_rows = cursor.fetchall()
        names = [d[0] for d in cursor.description]
    finally:
        con.close()
    assert names[1:] != sorted(names[1:], key=int)  # text order: mapping by name matters
    expected = np.zeros(ratings.matrix.shape, np.float32)
    col_of = {int(m): j for j, m in enumerate(ratings.movie_ids)}
    row_of = {int(u): i for i, u in enumerate(ratings.user_ids)}
    for row in pivot_rows:
        for name, value in zip(names[1:], row[1:], strict=True):
            expected[row_of[row[0]], col_of[int(name)]] = value
    assert sorted(row_of) == [r[0] for r in pivot_rows] == [3, 7, 9, 12]
    assert sorted(col_of) == [10, 20, 30, 40, 100]
    np.testing.assert_array_equal(ratings.matrix.toarray(), expected)
    assert ratings.matrix.nnz == len(rows)  # no stored zeros
    assert ratings.matrix.dtype == np.float32 and ratings.matrix.has_sorted_indices


# --- policies for odd but usable inputs ---------------------------------------------------------


def test_duplicate_ratings_keep_the_latest(tmp_path: Path) -> None:
    folder = write(tmp_path, (
        "1,10,2.0,100\n"
        "1,10,4.5,300\n"  # latest: kept
        "1,10,1.0,200\n"
        "2,20,3.0,50\n"
        "2,20,3.5,50\n"  # same time: the higher rating is kept
        "2,30,5.0,10\n"
    ))
    assert dense(folder) == {(1, 10): 4.5, (2, 20): 3.5, (2, 30): 5.0}
    data = load_dataset(folder)
    assert data.counts["duplicates"] == 3 and data.counts["ratings_rows"] == 6
    [dup] = [p for p in data.problems if p.code == "duplicate_ratings"]
    assert dup.count == 3 and "e.g. userId 1, movieId 10" in dup.message
    assert "kept the latest" in dup.message


def rating_times(ratings) -> dict[tuple[int, int], int]:
    """{(user_id, movie_id): rated_at} of every stored rating."""
    m = ratings.matrix
    users = np.repeat(ratings.user_ids, np.diff(m.indptr))
    movies = ratings.movie_ids[m.indices]
    return dict(zip(zip(users.tolist(), movies.tolist(), strict=True),
                    ratings.rated_at.tolist(), strict=True))


@pytest.mark.parametrize("repeated", [False, True])
def test_each_rating_keeps_its_time(tmp_path: Path, repeated: bool) -> None:
    # file order is not time order; a repeated pair keeps the time of its latest rating
    text = "2,30,5.0,10\n1,20,3.0,700\n1,10,2.0,900\n2,20,3.0,50\n"
    if repeated:
        text += "1,10,4.5,300\n2,20,1.0,40\n"
    got = rating_times(load_dataset(write(tmp_path, text)).ratings)
    assert got == {(1, 10): 900, (1, 20): 700, (2, 20): 50, (2, 30): 10}


def test_no_duplicates_no_warning(tmp_path: Path) -> None:
    folder = write(tmp_path, "1,10,2.0,100\n1,20,4.5,300\n2,10,3.0,5\n")
    assert "duplicate_ratings" not in codes(folder)


def test_ratings_of_unlisted_movies_are_dropped(tmp_path: Path, caplog) -> None:
    folder = write(tmp_path, "1,10,4.0,1\n1,99,5.0,2\n2,99,3.0,3\n2,98,1.0,4\n2,20,2.0,5\n")
    with caplog.at_level(logging.WARNING, logger="recs.stages.ingest"):
        data = load_dataset(folder)
    assert dense(folder) == {(1, 10): 4.0, (2, 20): 2.0}
    assert data.counts["unlisted_ratings"] == 3 and data.counts["unlisted_movies"] == 2
    assert data.counts["ratings_used"] == 2
    assert any("3 ratings of 2 movies missing from" in r.message for r in caplog.records)


def test_links_with_missing_ids_are_null(tmp_path: Path) -> None:
    links = "movieId,imdbId,tmdbId\n10,,110\n20,0000020,\n30,,\n40,0000040,140\n"
    folder = write(tmp_path, "1,10,4.0,1\n1,20,3.0,2\n", links=links)
    _, movies = read_dataset(folder)
    table = {r["movie_id"]: r for r in movies.to_pylist()}
    assert [table[m]["imdb_id"] for m in (10, 20, 30, 40)] == [None, 20, None, 40]
    assert [table[m]["tmdb_id"] for m in (10, 20, 30, 40)] == [110, None, None, 140]
    found = codes(folder)
    assert found["links_without_imdb"] == 2 and found["links_without_tmdb"] == 2


def test_movies_missing_from_links_are_kept(tmp_path: Path) -> None:
    links = "movieId,imdbId,tmdbId\n10,0000010,110\n77,0000077,770\n"  # 20-40 missing, 77 unlisted
    folder = write(tmp_path, "1,10,4.0,1\n1,20,3.0,2\n", links=links)
    _, movies = read_dataset(folder)
    assert movies.column("movie_id").to_pylist() == [10, 20, 30, 40]
    assert movies.column("imdb_id").to_pylist() == [10, None, None, None]
    found = codes(folder)
    assert found["movies_without_links"] == 3 and found["links_without_movies"] == 1
    assert found["movies_unrated"] == 2  # 30 and 40


# --- the movie table ----------------------------------------------------------------------------


def test_movie_table_columns(tmp_path: Path) -> None:
    folder = write(tmp_path, "1,10,4.0,1\n2,10,3.0,2\n1,30,5.0,3\n")
    _, movies = read_dataset(folder)
    rows = {r["movie_id"]: r for r in movies.to_pylist()}
    assert rows[30]["title"] == 'The "Gamma" Story (1992)' and rows[30]["year"] == 1992
    assert rows[20]["title"] == "Beta, The (1991)"
    assert rows[10]["n_ratings"] == 2 and rows[10]["mean_rating"] == pytest.approx(3.5)
    assert rows[40]["n_ratings"] == 0 and rows[40]["mean_rating"] is None


# --- the fast read (numpy columns) gives exactly what the SQL path gives ------------------------


def sql_path(folder: Path) -> dict:
    """What the SQL path (load_tables, build_matrix, movie_table, last_pairs.sql) reads."""
    con = connect()
    try:
        load_tables(con, folder)
        ratings, built = build_matrix(con)
        movies = movie_table(con)
        last = con.execute(load_sql("load/last_pairs")).fetchnumpy()
    finally:
        con.close()
    return {"ratings": ratings, "movies": movies, "built": built,
            "last": {c: np.asarray(last[c], np.int64) for c in ("query_id", "target_id")}}


def assert_same_as_sql(folder: Path) -> None:
    data, want = load_dataset(folder), sql_path(folder)
    got_m, want_m = data.ratings.matrix, want["ratings"].matrix
    assert got_m.shape == want_m.shape and got_m.dtype == want_m.dtype == np.float32
    for part in ("data", "indices", "indptr"):
        a, b = getattr(got_m, part), getattr(want_m, part)
        assert a.dtype == b.dtype and np.array_equal(a, b), part
    assert got_m.has_sorted_indices
    assert np.array_equal(data.ratings.rated_at, want["ratings"].rated_at)
    for ids in ("user_ids", "movie_ids"):
        a, b = getattr(data.ratings, ids), getattr(want["ratings"], ids)
        assert a.dtype == b.dtype == np.int64 and np.array_equal(a, b), ids
    assert data.movies.equals(want["movies"], check_metadata=True)
    for c in ("query_id", "target_id"):
        assert data.last_pairs[c].dtype == np.int64
        np.testing.assert_array_equal(data.last_pairs[c], want["last"][c])
    for key in ("duplicates", "unlisted_ratings", "unlisted_movies"):
        assert data.counts[key] == want["built"][key], key


def random_ratings(seed: int, repeats: bool, shuffle: bool, id_offset: int = 0) -> str:
    """~600 ratings, 40 users x 30 movies (ids 10..300 plus id_offset; 5 not in movies.csv),
    timestamps from a tiny range so that last-pair keys tie often."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(40 * 30, 600, replace=repeats)
    rows = [(int(c // 30) * 7 + 1, int(c % 30 + 1) * 10 + id_offset,
             int(rng.integers(1, 11)) / 2, int(rng.integers(-3, 4))) for c in cells]
    rows += [(999, 10 + id_offset, 3.0, 5)]  # a user with one rating
    if not shuffle:
        rows.sort(key=lambda r: r[0])  # grouped by user, file order within
    return "".join(f"{u},{m},{r},{t}\n" for u, m, r, t in rows)


def listed_movies(id_offset: int = 0) -> str:
    return "movieId,title,genres\n" + "".join(
        f"{m * 10 + id_offset},Movie {m} ({1950 + m}),Drama\n" for m in range(1, 31) if m % 6
    )


@pytest.fixture
def no_sql_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_dataset must not fall back to the SQL path."""
    def boom(*args, **kwargs):
        raise AssertionError("the SQL path ran")
    monkeypatch.setattr(ingest, "_parts_sql", boom)


@pytest.mark.slow
@pytest.mark.parametrize("shuffle", [False, True], ids=["grouped", "shuffled"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_read_equals_sql_path(tmp_path: Path, seed: int, shuffle: bool) -> None:
    folder = write(tmp_path, random_ratings(seed, repeats=False, shuffle=shuffle),
                   listed_movies(), "movieId,imdbId,tmdbId\n20,0000020,120\n")
    assert_same_as_sql(folder)
    assert codes(folder)["unlisted_ratings"] > 0  # the data exercises dropped ratings
    one, two = load_dataset(folder, threads=1), load_dataset(folder, threads=2)
    for c in ("query_id", "target_id"):  # last pairs on the calling thread or another one
        np.testing.assert_array_equal(one.last_pairs[c], two.last_pairs[c])


@pytest.mark.slow
@pytest.mark.parametrize("all_listed", [False, True], ids=["some-unlisted", "all-listed"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["grouped", "shuffled"])
def test_fast_read_with_repeated_pairs_equals_sql_path(
    tmp_path: Path, shuffle: bool, all_listed: bool, no_sql_path: None
) -> None:
    movies = listed_movies()
    if all_listed:
        movies += "".join(f"{m * 10},Movie {m} (2000),Drama\n" for m in range(6, 31, 6))
    folder = write(tmp_path, random_ratings(3, repeats=True, shuffle=shuffle), movies)
    assert_same_as_sql(folder)
    data = load_dataset(folder)
    assert data.counts["duplicates"] > 0
    assert (data.counts["unlisted_ratings"] == 0) == all_listed


def test_large_movie_ids_equal_sql_path(tmp_path: Path, no_sql_path: None) -> None:
    # ids >= 2**24 map by binary search instead of a lookup table
    offset = 2**30
    folder = write(tmp_path, random_ratings(4, repeats=False, shuffle=True, id_offset=offset),
                   listed_movies(offset), f"movieId,imdbId,tmdbId\n{offset + 20},0000020,120\n")
    assert load_dataset(folder).ratings.movie_ids.min() > offset
    assert_same_as_sql(folder)


def test_ids_beyond_int32_take_the_sql_path(tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = ingest._parts_sql
    monkeypatch.setattr(ingest, "_parts_sql", lambda *a: calls.append(1) or real(*a))
    big = 2**31 + 5
    folder = write(tmp_path, f"1,10,4.0,1\n{big},20,3.0,2\n{big},10,2.5,3\n")
    assert dense(folder) == {(1, 10): 4.0, (big, 20): 3.0, (big, 10): 2.5}
    assert calls
    assert_same_as_sql(folder)


def test_clean_input_never_reads_twice(tmp_path: Path, no_sql_path: None) -> None:
    folder = write(tmp_path, random_ratings(5, repeats=False, shuffle=True))
    assert load_dataset(folder).counts["ratings_used"] > 0


def test_last_pairs_break_ties_like_sql(tmp_path: Path, no_sql_path: None) -> None:
    folder = write(tmp_path, (
        "1,30,1.0,1\n1,10,4.0,5\n1,20,3.0,5\n"  # same time: the larger id is last
        "2,10,4.0,7\n"  # one rating: no pair
        "3,10,4.0,9\n3,10,2.0,9\n3,20,1.0,2\n"  # the same top key twice: no pair
        "4,10,4.0,9\n4,10,2.0,3\n4,20,1.0,1\n"  # the last two are one movie: no pair
        "5,30,4.0,-5\n5,40,2.0,-7\n"  # negative times
        "6,40,4.0,2\n6,20,2.0,2\n6,99,3.0,8\n"  # an unlisted movie still counts here
    ))
    data = load_dataset(folder)
    assert data.last_pairs["target_id"].tolist() == [20, 30, 99]
    assert data.last_pairs["query_id"].tolist() == [10, 40, 40]
    assert_same_as_sql(folder)


# --- real data ----------------------------------------------------------------------------------


def test_ml_latest_small_reads_exactly(ml_small: Path) -> None:
    data = load_dataset(ml_small)
    ratings, movies = data.ratings, data.movies
    assert ratings.matrix.nnz == 100_836
    assert ratings.matrix.shape == (610, 9_724)
    assert movies.num_rows == 9_742
    assert np.all(np.diff(ratings.user_ids) > 0) and np.all(np.diff(ratings.movie_ids) > 0)
    assert set(np.unique(ratings.matrix.data)) == {x / 2 for x in range(1, 11)}
    genres = movies.column("genres").to_pylist()
    assert not any("\r" in g for g in genres)
    titles = dict(zip(movies.column("movie_id").to_pylist(), movies.column("title").to_pylist(),
                      strict=True))
    assert '"' in titles[7789] and titles[7789].startswith("11'09")
    assert str(movies.schema.field("imdb_id").type) == "int64"
    imdb = dict(zip(movies.column("movie_id").to_pylist(), movies.column("imdb_id").to_pylist(),
                    strict=True))
    assert imdb[1] == 114709  # "0114709" in links.csv
    assert movies.column("imdb_id").null_count == 0
    assert movies.column("tmdb_id").null_count == 8
    assert {p.code: p.count for p in data.problems} == {
        "links_without_tmdb": 8, "movies_unrated": 18,
    }
    assert data.counts["duplicates"] == 0 and data.counts["unlisted_ratings"] == 0


@pytest.mark.slow  # both read paths on real data
def test_ml_latest_small_equals_sql_path(ml_small: Path, no_sql_path: None) -> None:
    assert_same_as_sql(ml_small)
