"""Synthetic MovieLens-latest folders of any size, for tests and benchmarks.

The shape imitates ml-latest: Zipf-like movie popularity, heavy-tailed user activity, half-star
ratings skewed toward 3-4, sparse movie ids, CSV-quoted titles, 7-digit imdb ids, some empty
tmdb ids. Users and movies carry latent taste vectors drawn around a few taste clusters: which
movies a user rates and how she rates them both follow those vectors, so collaborative filtering
has real signal to find. Everything comes from one seeded generator: same arguments, same bytes.

Three options make the data harder to process without changing its size or popularity skew (an
unsorted warehouse export): order "random" shuffles the rows (default "user": by user, then
movie, as MovieLens ships them; "user-time": by user, then time), times "random" draws each
rating's time uniformly over 1996-2023 (default "phases": each user's own window, tastes in
phases), and clusters=False draws tastes without taste clusters (movies picked by popularity
alone). The options draw from a stream of their own, so with the defaults the bytes are those
of a generator without options, and only what an option changes differs: random order holds
the same rows, random times the same (user, movie, rating) triplets.

fmt="parquet" writes the same tables as ratings.parquet, movies.parquet and links.parquet, with
the types a warehouse export would hold: ids INTEGER, rating DOUBLE, timestamp BIGINT (Unix
seconds), imdbId VARCHAR (7 digits, leading zeros kept), tmdbId BIGINT (null where the CSV's is
empty), title and genres VARCHAR. The job reads either to the same lists.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

log = logging.getLogger(__name__)

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
NO_GENRES = "(no genres listed)"
# how often each genre appears in ml-latest-small's movies.csv, to draw realistic genre mixes
_GENRE_FREQ = np.array([
    1828, 1263, 611, 664, 3756, 1199, 440, 4361, 779, 87, 978, 158, 334, 573, 1596, 980, 1894,
    382, 167,
], dtype=np.float64)
STARS = ("0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0")

_WORDS = (
    "Night", "City", "Love", "Dark", "Last", "Man", "Woman", "Story", "Dead", "House", "War",
    "Blood", "Girl", "King", "Star", "Time", "Life", "World", "Day", "Secret", "Lost", "Little",
    "Big", "Heart", "Fire", "Shadow", "River", "Ghost", "Summer", "Winter", "Money", "Game",
    "Dream", "Road", "Island", "Moon", "Black", "White", "Red", "Blue", "Wild", "Cold", "Kiss",
    "Devil", "Angel", "Street", "Hunter", "Sea", "Storm", "Silent", "Perfect", "Golden", "Iron",
    "Midnight", "Brother", "Sister", "Mother", "Father", "Paris", "Tokyo", "Lady", "Doctor",
    "Escape", "Return", "Revenge", "Legend", "Empire", "Garden", "Train", "Crazy", "Happy",
)
_FOREIGN = ("Amélie", "Mañana", "Schöne", "Café", "Crème", "Niño", "Ça", "Œuvre", "Déjà", "Søren")

_START = 820_454_400  # 1996-01-01 UTC, ml-latest's first ratings
_END = 1_697_068_800  # 2023-10-12 UTC
_DAY = 86_400
# how strongly a taste cluster prefers movies near its centre over merely popular ones
_TASTE = 1.6


FORMATS = ("csv", "parquet")
ORDERS = ("user", "user-time", "random")  # rows: by (user, movie), by (user, time), shuffled
TIMES = ("phases", "random")  # rating times: per-user windows in taste phases, or uniform


def write_synthetic(
    out: Path, users: int, movies: int, ratings: int, seed: int = 0, fmt: str = "csv", *,
    order: str = "user", times: str = "phases", clusters: bool = True,
) -> dict:
    """Write ratings.csv, movies.csv and links.csv of a synthetic MovieLens folder into `out`
    (fmt "parquet": ratings.parquet, movies.parquet, links.parquet with the same contents).

    users: distinct userIds (1..users, every one with at least a few ratings); movies: rows of
    movies.csv (ids sparse, up to ~3x `movies`); ratings: rows of ratings.csv, no (user, movie)
    pair twice. order, times, clusters: see the module doc. Files are byte-identical for the
    same arguments. Returns the counts, the seed, the options, the files written and the
    seconds taken. Raises ValueError when the counts cannot fit, for an unknown option, or
    when `out` holds files of the other format (a folder must not hold both for a table).
    """
    started = time.perf_counter()
    min_per_user = _check_counts(users, movies, ratings)
    _check_format(out, fmt)
    _check_choice("order", order, ORDERS)
    _check_choice("times", times, TIMES)
    rng = np.random.default_rng(seed)
    model = _latent_model(rng, users, movies, clusters)
    per_user = _activity(rng, users, movies, ratings, min_per_user)
    user_idx, movie_idx = _sample_pairs(rng, model, per_user)
    stars = _stars(rng, model, user_idx, movie_idx)
    stamps = _timestamps(rng, model, user_idx, movie_idx)
    movie_ids = _movie_ids(rng, movies)
    options = {"order": order, "times": times, "clusters": clusters}
    layout = np.random.default_rng([seed, 1])  # the options' own stream (module doc)
    if times == "random":
        stamps = layout.integers(_START, _END, len(stamps), dtype=np.int64)
    rows = _row_order(layout, order, user_idx, movie_idx, stamps)
    if rows is not None:
        user_idx, movie_idx, stars, stamps = (
            column[rows] for column in (user_idx, movie_idx, stars, stamps)
        )
        del rows

    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.{fmt}" for name in ("ratings", "movies", "links")}
    if fmt == "parquet":
        _write_parquet(files, user_idx, movie_ids[movie_idx], stars, stamps,
                       _movie_rows(rng, model, movie_ids), _link_rows(rng, movie_ids))
        return _done(files, users, movies, ratings, seed, options, started)
    ratings_table = pa.table({
        "userId": pa.array(user_idx + 1, pa.int32()),
        "movieId": pa.array(movie_ids[movie_idx], pa.int32()),
        "rating": pa.DictionaryArray.from_arrays(
            pa.array(stars, pa.int8()), pa.array(STARS, pa.string())
        ),
        "timestamp": pa.array(stamps, pa.int64()),
    })
    _write_csv(ratings_table, files["ratings"])
    del ratings_table, user_idx, movie_idx, stars, stamps
    _write_text_csv("movieId,title,genres", _movie_rows(rng, model, movie_ids), files["movies"])
    _write_text_csv("movieId,imdbId,tmdbId", _link_rows(rng, movie_ids), files["links"])
    return _done(files, users, movies, ratings, seed, options, started)


def _done(
    files: dict[str, Path], users: int, movies: int, ratings: int, seed: int, options: dict,
    started: float,
) -> dict:
    """write_synthetic's report, logged."""
    out = files["ratings"].parent
    seconds = time.perf_counter() - started
    log.info(
        "synthesized %d ratings from %d users on %d movies into %s in %.1f s",
        ratings, users, movies, out, seconds,
    )
    return {
        "users": users, "movies": movies, "ratings": ratings, "seed": seed, **options,
        "files": {name: str(path) for name, path in files.items()}, "seconds": round(seconds, 3),
    }


def _check_format(out: Path, fmt: str) -> None:
    """ValueError for an unknown `fmt`, or when `out` holds a table in the other format."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    other = "csv" if fmt == "parquet" else "parquet"
    clash = [f"{name}.{other}" for name in ("ratings", "movies", "links")
             if (out / f"{name}.{other}").exists()]
    if clash:
        raise ValueError(
            f"{out} already holds {', '.join(clash)}; a folder must not hold a table as both csv "
            f"and parquet: write the {fmt} files to another folder, or remove those"
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _row_order(
    rng: np.random.Generator, order: str, user_idx: NDArray[np.int32],
    movie_idx: NDArray[np.int32], stamps: NDArray[np.int64],
) -> NDArray[np.int64] | None:
    """The permutation that puts the rows (sorted by user, then movie) in `order`; None for
    "user", the order they are in."""
    if order == "random":
        return rng.permutation(len(user_idx))
    if order == "user-time":
        return np.lexsort((movie_idx, stamps, user_idx))
    return None


def _check_counts(users: int, movies: int, ratings: int) -> int:
    """The minimum ratings per user; ValueError when the counts cannot make a dataset."""
    if users < 1 or movies < 2 or ratings < users:
        raise ValueError(
            f"need users >= 1, movies >= 2 and ratings >= users; got users={users}, "
            f"movies={movies}, ratings={ratings}"
        )
    if ratings > users * (movies // 2):
        raise ValueError(
            f"ratings={ratings} is more than half of users x movies ({users} x {movies}): "
            "ask for fewer ratings or more movies"
        )
    # ml-latest keeps users with >= 20 ratings; tiny datasets get a proportional floor
    return int(np.clip(ratings // users // 5, 1, 20))


def _latent_model(
    rng: np.random.Generator, users: int, movies: int, clustered: bool = True
) -> dict:
    """Taste clusters, latent vectors, biases and per-cluster movie choice distributions.

    clustered=False: every cluster centre is the origin, so tastes are each one's own noise
    and every cluster picks movies by popularity alone (the same draws are made either way).

    Shapes: user_vec (users, dim), movie_vec (movies, dim), choice_cdf (clusters, movies),
    user_clusters (users, 2) primary and secondary cluster, movie_cluster (movies,).
    Movie index order is popularity-agnostic; `popularity` (movies,) sums to 1.
    """
    dim = 12
    clusters = int(np.clip(movies // 50, 2, 24))
    centers = rng.normal(0.0, 1.0, (clusters, dim))
    if not clustered:
        centers[:] = 0.0
    movie_cluster = rng.integers(0, clusters, movies)
    movie_vec = centers[movie_cluster] + rng.normal(0.0, 0.6, (movies, dim))
    user_clusters = rng.integers(0, clusters, (users, 2))
    user_vec = (
        0.75 * centers[user_clusters[:, 0]] + 0.35 * centers[user_clusters[:, 1]]
        + rng.normal(0.0, 0.5, (users, dim))
    )
    # Zipf popularity by rank, with noise that grows down the tail (obscure titles vary more)
    rank = rng.permutation(movies)
    spread = 2.0 * np.sqrt(rank / movies)
    popularity = (rank + 50.0) ** -1.0 * np.exp(rng.normal(0.0, 1.0, movies) * spread - spread)
    popularity /= popularity.sum()
    # a cluster picks movies near its centre more often: p_c(j) ~ popularity_j * exp(affinity)
    affinity = (centers @ movie_vec.T) / np.sqrt(dim)
    weights = popularity[None, :] * np.exp(_TASTE * np.clip(affinity, -3.0, 3.0))
    choice_cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    choice_cdf[:, -1] = 1.0
    return {
        "dim": dim,
        "movie_cluster": movie_cluster,
        "movie_vec": movie_vec.astype(np.float32),
        "user_vec": user_vec.astype(np.float32),
        "user_clusters": user_clusters,
        "user_bias": rng.normal(0.0, 0.45, users).astype(np.float32),
        "movie_bias": (
            rng.normal(0.0, 0.3, movies) + 0.08 * (np.log(popularity) - np.log(popularity).mean())
        ).astype(np.float32),
        "whole_stars": rng.random(users) < 0.35,  # some people never give half stars
        "popularity": popularity,
        "choice_cdf": choice_cdf,
        "choice_weights": weights / weights.sum(axis=1, keepdims=True),
    }


def _activity(
    rng: np.random.Generator, users: int, movies: int, ratings: int, floor: int
) -> NDArray[np.int64]:
    """Ratings per user (users,), heavy-tailed (lognormal), each in [floor, movies / 2], summing
    exactly to `ratings`."""
    cap = movies // 2
    weights = rng.lognormal(0.0, 1.25, users)
    counts = np.full(users, floor, dtype=np.int64)
    left = ratings - users * floor
    while left > 0:
        open_ = counts < cap
        share = weights * open_
        add = np.floor(left * share / share.sum()).astype(np.int64)
        add = np.minimum(add, cap - counts)
        if add.sum() == 0:  # the remainder: one each to the heaviest open users
            order = np.argsort(-share, kind="stable")[:left]
            add[order] = 1
        counts += add
        left = ratings - int(counts.sum())
    return counts


def _sample_pairs(
    rng: np.random.Generator, model: dict, per_user: NDArray[np.int64]
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Distinct (user index, movie index) pairs, `per_user[u]` for user u, sorted by (user,
    movie). Light users draw with replacement and drop repeats; users left short, and heavy
    ones, draw exactly without replacement by Gumbel top-k over their choice distribution."""
    users = len(per_user)
    movies = model["choice_cdf"].shape[1]
    heavy = per_user > max(movies // 25, 50)
    light = np.flatnonzero(~heavy)
    draws = np.ceil(per_user[light] * 1.4).astype(np.int64) + 3
    sample_user = np.repeat(light, draws)
    primary = rng.random(len(sample_user)) < 0.7
    sample_cluster = np.where(
        primary, model["user_clusters"][sample_user, 0], model["user_clusters"][sample_user, 1]
    )
    del primary
    sample_movie = _draw_movies(rng, model["choice_cdf"], sample_cluster)
    del sample_cluster
    keys = sample_user.astype(np.int64) * movies + sample_movie
    del sample_movie
    # first occurrences in draw order are a uniform random subset: keep the first per_user[u]
    unique_keys, first = np.unique(keys, return_index=True)
    del keys
    order = np.argsort(first, kind="stable")
    owner = sample_user[first[order]]
    del first
    starts = np.searchsorted(owner, owner, side="left")
    keep_sorted = (np.arange(len(owner)) - starts) < per_user[owner]
    keep = np.empty(len(keep_sorted), dtype=bool)
    keep[order] = keep_sorted
    del order, owner, starts, keep_sorted, sample_user
    pairs = unique_keys[keep]
    del unique_keys, keep
    got = np.bincount((pairs // movies).astype(np.int64), minlength=users)
    short = np.flatnonzero(~heavy & (got < per_user))
    pairs = pairs[got[pairs // movies] >= per_user[pairs // movies]]
    exact = np.sort(np.concatenate([np.flatnonzero(heavy), short]))
    log.debug("pairs: %d users drew with replacement, %d exactly", len(light), len(exact))
    if len(exact):
        extra = _gumbel_pairs(rng, model, exact, per_user[exact])
        pairs = np.sort(np.concatenate([pairs, extra]))
    return (pairs // movies).astype(np.int32), (pairs % movies).astype(np.int32)


def _draw_movies(
    rng: np.random.Generator, cdf: NDArray[np.float64], cluster: NDArray[np.int64]
) -> NDArray[np.int64]:
    """One movie index per draw (n,), from the choice distribution of each draw's cluster."""
    out = np.empty(len(cluster), dtype=np.int64)
    uniform = rng.random(len(cluster))
    order = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[order], np.arange(cdf.shape[0] + 1))
    for c in range(cdf.shape[0]):
        rows = order[bounds[c]:bounds[c + 1]]
        out[rows] = np.searchsorted(cdf[c], uniform[rows], side="right")
    return np.minimum(out, cdf.shape[1] - 1)


def _gumbel_pairs(
    rng: np.random.Generator, model: dict, users: NDArray[np.int64], counts: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Keys user * movies + movie of `counts[i]` distinct movies per user `users[i]`, drawn
    without replacement from the user's 70/30 mixture of two cluster distributions."""
    probs = model["choice_weights"]
    movies = probs.shape[1]
    block = max(1, 2**22 // movies)
    out = []
    for lo in range(0, len(users), block):
        chunk = users[lo:lo + block]
        clusters = model["user_clusters"][chunk]
        mix = 0.7 * probs[clusters[:, 0]] + 0.3 * probs[clusters[:, 1]]
        keys = np.log(mix + 1e-300) + rng.gumbel(size=mix.shape)
        for row, (user, n) in enumerate(zip(chunk, counts[lo:lo + block], strict=True)):
            top = np.argpartition(keys[row], movies - n)[movies - n:]
            out.append(user * movies + top.astype(np.int64))
    return np.concatenate(out)


def _stars(
    rng: np.random.Generator,
    model: dict,
    user_idx: NDArray[np.int32],
    movie_idx: NDArray[np.int32],
) -> NDArray[np.int8]:
    """Index into STARS (0 = 0.5 stars .. 9 = 5.0) per rating.

    A raw score (user bias + movie bias + taste match + noise) is standardised, given
    ml-latest's left skew and mean (about 3.5 stars, sd 1), then rounded to half stars, or to
    whole stars for the users who never give halves.
    """
    score = np.empty(len(user_idx), dtype=np.float32)
    scale = np.float32(2.0 / model["dim"])
    step = 1 << 21
    for lo in range(0, len(user_idx), step):
        u = user_idx[lo:lo + step]
        m = movie_idx[lo:lo + step]
        match = np.einsum("ij,ij->i", model["user_vec"][u], model["movie_vec"][m]) * scale
        noise = rng.normal(0.0, 0.55, len(u)).astype(np.float32)
        score[lo:lo + step] = model["user_bias"][u] + model["movie_bias"][m] + match + noise
    score -= score.mean(dtype=np.float64)
    score /= score.std(dtype=np.float64)
    np.clip(score, -4.0, 2.7, out=score)
    score = 3.55 + 1.0 * (score - 0.18 * (score * score - 1.0))
    whole = model["whole_stars"][user_idx]
    halves = np.where(whole, 2 * np.rint(score), np.rint(2 * score))
    return (np.clip(halves, 1, 10) - 1).astype(np.int8)


def _timestamps(
    rng: np.random.Generator,
    model: dict,
    user_idx: NDArray[np.int32],
    movie_idx: NDArray[np.int32],
) -> NDArray[np.int64]:
    """Unix seconds per rating: each user is active over one window (a single evening up to
    years) somewhere between 1996 and 2023, and goes through her tastes in phases (movies of
    one cluster rated close together), so the order of a history carries signal too."""
    users = len(model["user_bias"])
    clusters = int(model["movie_cluster"].max()) + 1
    span = np.minimum(np.exp(rng.normal(2.0, 2.2, users)) * _DAY, (_END - _START) / 2)
    first = _START + rng.random(users) * (_END - _START - span)
    phase = rng.random((users, clusters)).astype(np.float32)
    offsets = phase[user_idx, model["movie_cluster"][movie_idx]]
    offsets += rng.normal(0.0, 0.15, len(user_idx)).astype(np.float32)
    np.clip(offsets, 0.0, 1.0, out=offsets)
    return (first[user_idx] + offsets * span[user_idx]).astype(np.int64)


def _movie_ids(rng: np.random.Generator, movies: int) -> NDArray[np.int64]:
    """Ascending movie ids (movies,) with gaps, up to about 3 x `movies`."""
    ids = np.sort(rng.choice(3 * movies, size=movies, replace=False)) + 1
    return ids.astype(np.int64)


def _movie_rows(
    rng: np.random.Generator, model: dict, movie_ids: NDArray[np.int64]
) -> list[tuple[str, str, str]]:
    """(movieId, title, genres) per movie: "Title (year)", some with commas, quotes or accents;
    genres sorted and '|'-joined, drawn from the movie's cluster's core genres plus extras."""
    movies = len(movie_ids)
    clusters = int(model["movie_cluster"].max()) + 1
    freq = _GENRE_FREQ / _GENRE_FREQ.sum()
    # each taste cluster has two core genres, so genres carry some of the latent structure
    core = np.stack([rng.choice(len(GENRES), size=2, replace=False) for _ in range(clusters)])
    extra = rng.choice(len(GENRES), size=movies, p=freq)
    years = np.clip(2024 - np.floor(rng.exponential(14.0, movies)), 1902, 2023).astype(int)
    words = rng.integers(0, len(_WORDS), (movies, 3))
    n_words = rng.integers(1, 4, movies)
    style = rng.random(movies)
    coin = rng.random((movies, 3))
    rows = []
    for j in range(movies):
        name = " ".join(_WORDS[w] for w in words[j, : n_words[j]])
        if style[j] < 0.15:
            name = f"{name}, The"
        elif style[j] < 0.22:
            name = f"{name}, {_WORDS[words[j, 2]]} and {_WORDS[words[j, 0]]}"
        elif style[j] < 0.23:
            name = f'The "{name}" Affair'
        elif style[j] < 0.25:
            name = f"{_FOREIGN[words[j, 1] % len(_FOREIGN)]} {name}"
        if coin[j, 0] < 0.004:
            genres = NO_GENRES
        else:
            cluster = model["movie_cluster"][j]
            chosen = {GENRES[core[cluster, 0]]}
            if coin[j, 1] < 0.6:
                chosen.add(GENRES[core[cluster, 1]])
            if coin[j, 2] < 0.4:
                chosen.add(GENRES[extra[j]])
            genres = "|".join(sorted(chosen))
        rows.append((str(movie_ids[j]), f"{name} ({years[j]})", genres))
    return rows


def _link_rows(
    rng: np.random.Generator, movie_ids: NDArray[np.int64]
) -> list[tuple[str, str, str]]:
    """(movieId, imdbId as 7-digit zero-padded text, tmdbId or '' for about 1%) per movie."""
    movies = len(movie_ids)
    imdb = np.sort(rng.choice(9_000_000, size=movies, replace=False)) + 10_000
    tmdb = rng.choice(1_000_000, size=movies, replace=False) + 2
    empty = rng.random(movies) < 0.01
    return [
        (str(m), f"{i:07d}", "" if e else str(t))
        for m, i, t, e in zip(movie_ids.tolist(), imdb.tolist(), tmdb.tolist(), empty, strict=True)
    ]


def _write_csv(table: pa.Table, path: Path) -> None:
    """A table of numbers and plain text as CSV with MovieLens's bare header line, unquoted."""
    with path.open("wb") as sink:
        sink.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(
            table, sink,
            pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=1 << 16),
        )


def _write_parquet(
    files: dict[str, Path], user_idx: NDArray[np.int32], movie_id: NDArray[np.int64],
    stars: NDArray[np.int8], stamps: NDArray[np.int64],
    movie_rows: list[tuple[str, str, str]], link_rows: list[tuple[str, str, str]],
) -> None:
    """The three tables as Parquet (zstd), holding what the CSVs would hold (module docstring)."""
    half = np.array([float(s) for s in STARS])
    ratings = pa.table({
        "userId": pa.array(user_idx + 1, pa.int32()),
        "movieId": pa.array(movie_id, pa.int32()),
        "rating": pa.array(half[stars], pa.float64()),
        "timestamp": pa.array(stamps, pa.int64()),
    })
    pq.write_table(ratings, files["ratings"], compression="zstd")
    del ratings
    ids, titles, genres = zip(*movie_rows, strict=True)
    pq.write_table(pa.table({
        "movieId": pa.array([int(i) for i in ids], pa.int32()),
        "title": pa.array(titles, pa.string()),
        "genres": pa.array(genres, pa.string()),
    }), files["movies"], compression="zstd")
    ids, imdb, tmdb = zip(*link_rows, strict=True)
    pq.write_table(pa.table({
        "movieId": pa.array([int(i) for i in ids], pa.int32()),
        "imdbId": pa.array(imdb, pa.string()),
        "tmdbId": pa.array([int(t) if t else None for t in tmdb], pa.int64()),
    }), files["links"], compression="zstd")


def _write_text_csv(header: str, rows: list[tuple[str, ...]], path: Path) -> None:
    """Small CSVs, quoted as MovieLens does: only fields with a comma or a quote, quotes doubled."""
    lines = [header]
    lines.extend(",".join(_quote(field) for field in row) for row in rows)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _quote(field: str) -> str:
    if "," in field or '"' in field:
        return '"' + field.replace('"', '""') + '"'
    return field
