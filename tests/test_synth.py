"""recs.tools.synth: a synthetic MovieLens folder with the right format, counts and shape."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.linalg import svds

from recs.stages.ingest import read_dataset
from recs.tools.synth import GENRES, NO_GENRES, write_synthetic

USERS, MOVIES, RATINGS = 1500, 3000, 120_000


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, USERS, MOVIES, RATINGS, seed=7)
    return out


@pytest.fixture(scope="module")
def ratings(folder: Path) -> np.ndarray:
    """(n, 4) float64: userId, movieId, rating, timestamp."""
    return np.loadtxt(folder / "ratings.csv", delimiter=",", skiprows=1)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_synthetic(a, 200, 400, 8000, seed=3)
    write_synthetic(b, 200, 400, 8000, seed=3)
    write_synthetic(c, 200, 400, 8000, seed=4)
    for name in ("ratings.csv", "movies.csv", "links.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_headers_are_movielens_exactly(folder: Path) -> None:
    first = {name: (folder / name).read_bytes().split(b"\n", 1)[0] for name in
             ("ratings.csv", "movies.csv", "links.csv")}
    assert first == {
        "ratings.csv": b"userId,movieId,rating,timestamp",
        "movies.csv": b"movieId,title,genres",
        "links.csv": b"movieId,imdbId,tmdbId",
    }


def test_requested_counts_and_every_user_rates_a_few(ratings: np.ndarray, folder: Path) -> None:
    assert len(ratings) == RATINGS
    users, per_user = np.unique(ratings[:, 0], return_counts=True)
    assert users.tolist() == list(range(1, USERS + 1))
    assert per_user.min() >= 5
    assert len(read_rows(folder / "movies.csv")) == MOVIES + 1
    assert len(read_rows(folder / "links.csv")) == MOVIES + 1


def test_no_pair_twice_and_rows_sorted_by_user_then_movie(ratings: np.ndarray) -> None:
    keys = ratings[:, 0].astype(np.int64) * 10**7 + ratings[:, 1].astype(np.int64)
    assert len(np.unique(keys)) == len(keys)
    assert np.all(np.diff(keys) > 0)


def test_ratings_are_half_stars_skewed_to_three_and_four(ratings: np.ndarray) -> None:
    stars = ratings[:, 2]
    assert set(np.unique(stars)) == set(np.arange(1, 11) / 2)
    counts = Counter(stars.tolist())
    assert counts.most_common(1)[0][0] == 4.0
    assert 3.3 < stars.mean() < 3.8
    assert counts[3.0] + counts[3.5] + counts[4.0] > 0.5 * len(stars)


def test_rating_text_is_one_decimal(folder: Path) -> None:
    lines = (folder / "ratings.csv").read_text().splitlines()[1:200]
    assert all(re.fullmatch(r"\d+,\d+,[0-5]\.[05],\d{9,10}", line) for line in lines)


def test_timestamps_span_years_and_each_user_one_window(ratings: np.ndarray) -> None:
    stamps = ratings[:, 3]
    assert stamps.min() >= 820_454_400 and stamps.max() <= 1_697_068_800
    assert stamps.max() - stamps.min() > 15 * 365 * 86_400
    mine = stamps[ratings[:, 0] == 1]
    assert mine.max() - mine.min() < 14 * 365 * 86_400


def test_popularity_and_activity_are_heavy_tailed(ratings: np.ndarray) -> None:
    per_movie = np.unique(ratings[:, 1], return_counts=True)[1]
    per_user = np.unique(ratings[:, 0], return_counts=True)[1]
    assert per_movie.max() > 20 * np.median(per_movie)
    assert per_user.max() > 8 * np.median(per_user)


def test_movie_ids_sparse_ascending_and_titles_quoted(folder: Path) -> None:
    rows = read_rows(folder / "movies.csv")[1:]
    ids = np.array([int(r[0]) for r in rows])
    assert np.all(np.diff(ids) > 0)
    assert np.any(np.diff(ids) > 1) and ids.max() <= 3 * MOVIES
    titles = [r[1] for r in rows]
    assert all(re.search(r" \((19|20)\d\d\)$", t) for t in titles)
    assert any("," in t for t in titles) and any('"' in t for t in titles)
    assert any(not t.isascii() for t in titles)
    text = (folder / "movies.csv").read_text(encoding="utf-8")
    assert '"The ""' in text  # inner quotes doubled, as RFC 4180 and MovieLens do
    for _, _, genres in rows:
        assert genres == NO_GENRES or (
            set(genres.split("|")) <= set(GENRES) and genres.split("|") == sorted(genres.split("|"))
        )


def test_links_imdb_seven_digits_some_tmdb_empty(folder: Path) -> None:
    rows = read_rows(folder / "links.csv")[1:]
    assert all(re.fullmatch(r"\d{7}", r[1]) for r in rows)
    assert any(r[1].startswith("0") for r in rows)
    empty = sum(r[2] == "" for r in rows)
    assert 0 < empty < 0.05 * len(rows)


def test_latent_taste_co_rated_movies_share_genres(folder: Path, ratings: np.ndarray) -> None:
    """Movies a user rates together share genres more than random pairs: real structure."""
    genres = {int(r[0]): set(r[2].split("|")) for r in read_rows(folder / "movies.csv")[1:]}
    rng = np.random.default_rng(0)

    def jaccard(a: int, b: int) -> float:
        return len(genres[a] & genres[b]) / len(genres[a] | genres[b])

    users = ratings[:, 0].astype(int)
    movies = ratings[:, 1].astype(int)
    picks = rng.integers(0, len(ratings), 3000)
    together = []
    for i in picks:
        theirs = movies[users == users[i]]
        together.append(jaccard(movies[i], int(rng.choice(theirs))))
    random_pairs = [jaccard(int(a), int(b)) for a, b in rng.choice(movies, (3000, 2))]
    assert np.mean(together) > 1.2 * np.mean(random_pairs)


def test_ratings_follow_latent_taste_not_noise(ratings: np.ndarray) -> None:
    """After user and movie means, a rank-8 SVD of 80% of the ratings predicts the other 20%."""
    users = ratings[:, 0].astype(int) - 1
    movies = np.unique(ratings[:, 1], return_inverse=True)[1]
    stars = ratings[:, 2]
    train = np.random.default_rng(1).random(len(stars)) < 0.8
    n_users, n_movies = users.max() + 1, movies.max() + 1
    mu = stars[train].mean()
    user_mean = np.bincount(users[train], stars[train] - mu, n_users) / np.maximum(
        np.bincount(users[train], None, n_users), 1
    )
    resid = stars - mu - user_mean[users]
    movie_mean = np.bincount(movies[train], resid[train], n_movies) / np.maximum(
        np.bincount(movies[train], None, n_movies) + 5, 1
    )
    resid -= movie_mean[movies]
    matrix = sparse.csr_array(
        (resid[train], (users[train], movies[train])), shape=(n_users, n_movies)
    )
    u, s, vt = svds(matrix, k=8, random_state=0)
    predicted = np.einsum("ij,ji->i", (u * s)[users[~train]], vt[:, movies[~train]])
    assert np.corrcoef(predicted, resid[~train])[0, 1] > 0.15


def test_read_dataset_reads_it(folder: Path) -> None:
    ratings, movies = read_dataset(folder)
    assert ratings.matrix.nnz == RATINGS
    assert ratings.matrix.shape[0] == USERS
    assert movies.num_rows == MOVIES
    assert set(np.unique(ratings.matrix.data)) <= set(np.arange(1, 11) / 2)
    titles = movies.column("title").to_pylist()
    assert any('"' in t for t in titles) and all(t.endswith(")") for t in titles)
    assert movies.column("year").null_count == 0
    assert movies.column("imdb_id").null_count == 0
    assert 0 < movies.column("tmdb_id").null_count < MOVIES


@pytest.mark.parametrize(("users", "movies", "ratings"), [(0, 10, 10), (5, 10, 4), (10, 4, 30)])
def test_impossible_counts_raise(tmp_path: Path, users: int, movies: int, ratings: int) -> None:
    with pytest.raises(ValueError, match=f"ratings={ratings}"):  # the check, not numpy
        write_synthetic(tmp_path, users, movies, ratings)


# --- --format parquet --------------------------------------------------------------------------


def test_parquet_holds_the_csv_tables_and_reads_to_the_same_dataset(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from recs.stages.ingest import load_dataset

    csv_dir, pq_dir, again = tmp_path / "csv", tmp_path / "pq", tmp_path / "again"
    write_synthetic(csv_dir, 200, 400, 8000, seed=3)
    info = write_synthetic(pq_dir, 200, 400, 8000, seed=3, fmt="parquet")
    write_synthetic(again, 200, 400, 8000, seed=3, fmt="parquet")
    names = ("ratings.parquet", "movies.parquet", "links.parquet")
    assert sorted(p.name for p in pq_dir.iterdir()) == sorted(names)
    assert info["files"] == {n.split(".")[0]: str(pq_dir / n) for n in names}
    for name in names:
        assert (pq_dir / name).read_bytes() == (again / name).read_bytes(), name
    schemas = {n: {f.name: str(f.type) for f in pq.read_schema(pq_dir / n)} for n in names}
    assert schemas == {
        "ratings.parquet": {"userId": "int32", "movieId": "int32", "rating": "double",
                            "timestamp": "int64"},
        "movies.parquet": {"movieId": "int32", "title": "string", "genres": "string"},
        "links.parquet": {"movieId": "int32", "imdbId": "string", "tmdbId": "int64"},
    }
    links = pq.read_table(pq_dir / "links.parquet").to_pylist()
    assert links[0]["imdbId"] == read_rows(csv_dir / "links.csv")[1][1]  # zeros kept
    a, b = load_dataset(csv_dir), load_dataset(pq_dir)
    assert dict(a.counts) == dict(b.counts)
    assert (a.ratings.matrix != b.ratings.matrix).nnz == 0
    assert np.array_equal(a.ratings.rated_at, b.ratings.rated_at)
    assert a.movies.equals(b.movies)


def test_a_folder_never_gets_both_formats(tmp_path: Path) -> None:
    write_synthetic(tmp_path, 20, 40, 200, seed=1)
    with pytest.raises(ValueError, match="already holds ratings.csv, movies.csv, links.csv"):
        write_synthetic(tmp_path, 20, 40, 200, seed=1, fmt="parquet")
    with pytest.raises(ValueError, match="format must be one of csv, parquet"):
        write_synthetic(tmp_path / "x", 20, 40, 200, fmt="orc")


def test_cli_synth_format_parquet(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from recs.cli import main

    result = CliRunner().invoke(
        main, ["synth", "--users", "20", "--movies", "40", "--ratings", "200", "--format",
               "parquet", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "links.parquet", "movies.parquet", "ratings.parquet",
    ]


# --- the harder shapes: --order, --times, --no-clusters ----------------------------------------


def synth_rows(tmp_path: Path, name: str, **options: object) -> np.ndarray:
    """(n, 4) int64 rows of a small seed-3 ratings.csv: userId, movieId, half stars, time."""
    out = tmp_path / name
    write_synthetic(out, 200, 400, 8000, seed=3, **options)
    rows = np.loadtxt(out / "ratings.csv", delimiter=",", skiprows=1)
    rows[:, 2] *= 2
    return rows.astype(np.int64)


def sorted_rows(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def test_random_order_shuffles_the_same_rows(tmp_path: Path) -> None:
    plain = synth_rows(tmp_path, "plain")
    shuffled = synth_rows(tmp_path, "shuffled", order="random")
    assert np.array_equal(sorted_rows(shuffled), sorted_rows(plain))
    assert np.count_nonzero(np.diff(shuffled[:, 0]) < 0) > len(plain) // 4  # users interleave
    for name in ("movies.csv", "links.csv"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "shuffled" / name) \
            .read_bytes()


def test_user_time_order_sorts_each_history_by_time(tmp_path: Path) -> None:
    plain = synth_rows(tmp_path, "plain")
    by_time = synth_rows(tmp_path, "by_time", order="user-time")
    assert np.array_equal(sorted_rows(by_time), sorted_rows(plain))
    assert np.all(np.diff(by_time[:, 0]) >= 0)
    same_user = np.diff(by_time[:, 0]) == 0
    assert np.all(np.diff(by_time[:, 3])[same_user] >= 0)
    assert np.any(np.diff(by_time[:, 1])[same_user] < 0)  # no longer by movie


def test_random_times_keep_the_triplets_and_spread_each_user_over_the_years(
    tmp_path: Path,
) -> None:
    plain = synth_rows(tmp_path, "plain")
    spread = synth_rows(tmp_path, "spread", times="random")
    assert np.array_equal(spread[:, :3], plain[:, :3])
    assert spread[:, 3].min() >= 820_454_400 and spread[:, 3].max() < 1_697_068_800

    def median_span_years(rows: np.ndarray) -> float:
        starts = np.r_[0, np.flatnonzero(np.diff(rows[:, 0])) + 1]
        span = np.maximum.reduceat(rows[:, 3], starts) - np.minimum.reduceat(rows[:, 3], starts)
        return float(np.median(span)) / (365 * 86_400)

    # every user rates at least 5 times: uniform times over 27.8 years span >= 4/6 of them
    assert median_span_years(spread) > 15
    assert median_span_years(plain) < 1  # a window of days to months per user


def co_rated_genre_ratio(folder: Path, samples: int = 400_000) -> float:
    """Mean genre Jaccard of two different movies one user rated over that of two different
    movies from random ratings: 1 when what a user rates does not depend on her taste."""
    rows = read_rows(folder / "movies.csv")[1:]
    ids = np.array([int(r[0]) for r in rows])
    names = [*GENRES, NO_GENRES]
    onehot = np.array([[g in r[2].split("|") for g in names] for r in rows])
    ratings = np.loadtxt(folder / "ratings.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    users, movies = ratings[:, 0].astype(int), np.searchsorted(ids, ratings[:, 1].astype(int))
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1, len(users)]
    rng = np.random.default_rng(1)
    row = rng.integers(0, len(movies), samples)
    user = np.searchsorted(starts, row, side="right") - 1
    other = starts[user] + (rng.random(samples) * np.diff(starts)[user]).astype(int)

    def jaccard(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a[a != b], b[a != b]
        return float(np.mean((onehot[a] & onehot[b]).sum(1) / (onehot[a] | onehot[b]).sum(1)))

    anyone = movies[rng.integers(0, len(movies), (2, samples))]
    return jaccard(movies[row], movies[other]) / jaccard(anyone[0], anyone[1])


def test_no_clusters_keeps_the_activity_but_loses_the_taste(
    tmp_path: Path, folder: Path
) -> None:
    flat = tmp_path / "flat"
    write_synthetic(flat, USERS, MOVIES, RATINGS, seed=7, clusters=False)
    assert co_rated_genre_ratio(folder) > 1.2
    assert abs(co_rated_genre_ratio(flat) - 1) < 0.05
    mine = np.loadtxt(flat / "ratings.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    theirs = np.loadtxt(folder / "ratings.csv", delimiter=",", skiprows=1, usecols=(0,))
    assert np.array_equal(mine[:, 0], theirs)  # the same users, each as active
    per_movie = np.unique(mine[:, 1], return_counts=True)[1]
    assert per_movie.max() > 20 * np.median(per_movie)


def test_unknown_options_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="order must be one of user, user-time, random"):
        write_synthetic(tmp_path, 20, 40, 200, order="time")
    with pytest.raises(ValueError, match="times must be one of phases, random"):
        write_synthetic(tmp_path, 20, 40, 200, times="sorted")


def test_cli_synth_harder_options(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from recs.cli import main

    args = ["synth", "--users", "20", "--movies", "40", "--ratings", "200", "--seed", "2"]
    harder = ["--order", "random", "--times", "random", "--no-clusters"]
    result = CliRunner().invoke(main, [*args, *harder, str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    info = write_synthetic(tmp_path / "api", 20, 40, 200, seed=2, order="random",
                           times="random", clusters=False)
    assert (info["order"], info["times"], info["clusters"]) == ("random", "random", False)
    for name in ("ratings.csv", "movies.csv", "links.csv"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes()


def test_shuffled_rows_read_to_the_same_dataset(tmp_path: Path) -> None:
    from recs.stages.ingest import load_dataset

    write_synthetic(tmp_path / "plain", 200, 400, 8000, seed=3)
    write_synthetic(tmp_path / "shuffled", 200, 400, 8000, seed=3, order="random")
    a, b = load_dataset(tmp_path / "plain"), load_dataset(tmp_path / "shuffled")
    assert (a.ratings.matrix != b.ratings.matrix).nnz == 0
    assert np.array_equal(a.ratings.rated_at, b.ratings.rated_at)
    assert all(np.array_equal(a.last_pairs[k], b.last_pairs[k]) for k in a.last_pairs)
    assert a.movies.equals(b.movies) and dict(a.counts) == dict(b.counts)
