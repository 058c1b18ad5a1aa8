"""Shared fixtures.

- `ml_small`: the real MovieLens latest-small folder (../shared/data beside the checkout, or
  RECS_TEST_DATA). Missing data fails the test: CI has it, and users rely on these checks.
- `make_dataset`: writes a tiny hand-made MovieLens folder whose right answers are known.
- `run_tiny`: the nightly job on such a folder (dim 2, top 3), writing under one root.
- `fake_run`: a published run folder holding one file, without running the job.
- `small_run`: the nightly job run once on ml-latest-small for the whole session
  (settings, result); tests read its output and must not modify it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    return Path(os.environ.get("RECS_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def ml_small() -> Path:
    folder = _data_root() / "ml-latest-small"
    if not (folder / "ratings.csv").is_file():
        pytest.fail(f"MovieLens latest-small not found at {folder}: set RECS_TEST_DATA")
    return folder


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's RECS_* settings or touches ~/.lancedb or ~/.cache."""
    for name in list(os.environ):
        if name.startswith("RECS_") and name != "RECS_TEST_DATA" and name != "RECS_ARTIFACTS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("RECS_DB", str(tmp_path / "lancedb"))
    monkeypatch.setenv("RECS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LANCEDB_LOG", "error")


def two_groups() -> list[tuple[int, int, float, int]]:
    """Users 1-6 rate only movies 10-14, users 7-12 only movies 20-24, every rating 4 or 5.

    With dim=2 the SVD gives each group one axis: movies inside a group all point the same
    way (cosine 1, so lists are ordered by id) and are orthogonal to the other group.
    """
    rows = []
    for user in range(1, 13):
        movies = range(10, 15) if user <= 6 else range(20, 25)
        for j, movie in enumerate(movies):
            rows.append((user, movie, 4.0 + (user + j) % 2, 1_500_000_000 + 60 * (user * 10 + j)))
    return rows


def write_dataset(
    folder: Path,
    ratings: list[tuple[int, int, float, int]],
    titles: dict[int, str] | None = None,
) -> Path:
    """A MovieLens-latest folder (CRLF, like GroupLens) holding exactly these ratings."""
    folder.mkdir(parents=True, exist_ok=True)
    movie_ids = sorted({m for _, m, _, _ in ratings} | set(titles or {}))
    titles = titles or {}
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{u},{m},{r},{t}" for u, m, r, t in ratings]
    (folder / "ratings.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    movies = ["movieId,title,genres"]
    links = ["movieId,imdbId,tmdbId"]
    for m in movie_ids:
        title = titles.get(m, f"Movie {m} (20{m % 100:02d})").replace('"', '""')
        genre = "Comedy|Drama" if m % 2 else "Drama"
        movies.append(f'{m},"{title}",{genre}')
        links.append(f"{m},{m:07d},{m + 1000}")
    (folder / "movies.csv").write_bytes(("\r\n".join(movies) + "\r\n").encode())
    (folder / "links.csv").write_bytes(("\r\n".join(links) + "\r\n").encode())
    return folder


def run_tiny(data: Path, root: Path, **overrides):
    """The nightly job on a tiny folder: dim 2, top 3, out/ and db/ under `root`;
    `overrides` are further Settings fields."""
    from recs.core.settings import Settings
    from recs.jobs import nightly

    return nightly.run(Settings(data=str(data), out=root / "out", db=root / "db", dim=2,
                                top_k=3, **overrides))


def fake_run(out: Path, run_id: str) -> Path:
    """Publish a run `run_id` under `out` whose only file, marker, holds its id; its folder."""
    from recs.stages import publish

    stage = publish.staging_dir(out, run_id)
    (stage / "marker").write_text(run_id)
    return publish.publish(out, stage, run_id)


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    def make(ratings=None, titles=None, name: str = "data") -> Path:
        return write_dataset(tmp_path / name, ratings or two_groups(), titles)

    return make


@pytest.fixture(scope="session")
def small_run(ml_small: Path, tmp_path_factory: pytest.TempPathFactory):
    from recs.core.settings import Settings
    from recs.jobs import nightly

    root = tmp_path_factory.mktemp("small_run")
    settings = Settings(data=str(ml_small), out=root / "out", db=root / "lancedb",
                        cache=root / "cache")
    return settings, nightly.run(settings)
