"""Helpers shared by the tests (imported as `from helpers import ...`; fixtures are in conftest).

- `two_groups` / `write_dataset`: a tiny hand-made MovieLens folder whose right answers are known.
- `run_tiny`: the nightly job on such a folder (dim 2, top 3), writing under one root.
- `fake_run`: a published run folder holding one file, without running the job.
- `check_json_files`: a run's JSON files against the JSON Schemas the package ships.
- `find_dataset`: where the real MovieLens folders are (see conftest's `ml_small`/`ml_100k`).
- `isolate_env`: the environment every test runs in (conftest's autouse `_isolated_env`), for
  module- or session-scoped fixtures that run the job before any test's own isolation.

`tests/` is on sys.path because pytest imports conftest.py and the test modules from it (the
default "prepend" import mode; tests/ has no __init__.py). That holds whether `recs` is
installed editable or not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# a file each real dataset folder must hold to count as found
MARKERS = {"ml-latest-small": "ratings.csv", "ml-100k": "u.data"}


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


def isolate_env(mp: pytest.MonkeyPatch, root: Path) -> None:
    """No developer RECS_* setting (RECS_TEST_DATA and RECS_ARTIFACTS stay); RECS_DB and
    RECS_CACHE under `root`, so nothing touches ~/.lancedb or the user's cache."""
    for name in list(os.environ):
        if name.startswith("RECS_") and name not in ("RECS_TEST_DATA", "RECS_ARTIFACTS"):
            mp.delenv(name)
    mp.setenv("RECS_DB", str(root / "lancedb"))
    mp.setenv("RECS_CACHE", str(root / "cache"))
    mp.setenv("LANCEDB_LOG", "error")


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


def schema_validator(name: str):
    """A Draft 2020-12 validator for the shipped recs/assets/schema/<name>.schema.json."""
    from importlib import resources

    import jsonschema

    schema = json.loads((resources.files("recs") / "assets" / "schema" /
                         f"{name}.schema.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check_json_files(run_dir: Path, sample: int | None = None, seed: int = 0) -> int:
    """Check the JSON files under a run's json/v1 against their schemas; how many were checked.

    movies/<id>.json: movie.schema.json, named after its movie_id, and its imdb/tt<id>.json
    alias (if it has an IMDb id) holds the same bytes. index.json, changes.json, search.json and
    search/*.json (every one, also with `sample`): their schemas.
    schema/*.json: the package's schemas, byte for byte. With `sample`, only that many movies/
    files, drawn with `seed`, and their aliases; without, every file, and a file no schema
    covers (an alias of no movie included) fails.
    """
    import numpy as np

    root = run_dir / "json" / "v1"
    movie = schema_validator("movie")
    movies = sorted((root / "movies").glob("*.json"))
    if sample is not None and sample < len(movies):
        pick = np.random.default_rng(seed).choice(len(movies), sample, replace=False)
        movies = [movies[i] for i in sorted(pick)]
    checked: set[Path] = set()
    for path in movies:
        raw = path.read_bytes()
        payload = json.loads(raw)
        errors = sorted(movie.iter_errors(payload), key=lambda e: list(e.path))
        assert not errors, (path.name, errors[0].message, list(errors[0].path))
        assert path.name == f"{payload['movie_id']}.json", path.name
        checked.add(path)
        if payload["imdb_id"] is not None:
            alias = root / "imdb" / f"tt{payload['imdb_id']:07d}.json"
            # two movies may share an IMDb id: the alias is the first one's file
            assert json.loads(alias.read_bytes())["imdb_id"] == payload["imdb_id"], alias.name
            if alias.read_bytes() == raw:
                checked.add(alias)
    for name in ("index", "changes"):
        schema_validator(name).validate(json.loads((root / f"{name}.json").read_bytes()))
        checked.add(root / f"{name}.json")
    search = schema_validator("search")
    for path in [root / "search.json", *sorted((root / "search").glob("*.json"))]:
        search.validate(json.loads(path.read_bytes()))
        checked.add(path)
    from importlib import resources

    for path in sorted((root / "schema").glob("*.json")):
        shipped = resources.files("recs") / "assets" / "schema" / path.name
        assert path.read_bytes() == shipped.read_bytes(), path.name
        checked.add(path)
    if sample is None:
        unchecked = sorted(p.relative_to(root).as_posix() for p in set(root.rglob("*.json"))
                           - checked)
        assert unchecked == [], f"JSON files no check covers: {unchecked[:5]}"
    return len(checked)


# --- the real MovieLens data ------------------------------------------------------------------


def user_cache(env: Mapping[str, str]) -> Path:
    """The cache folder `recs run` uses under `env`: RECS_CACHE, else $XDG_CACHE_HOME/recs,
    else ~/.cache/recs (recs.core.settings.default_cache_dir)."""
    if env.get("RECS_CACHE"):
        return Path(env["RECS_CACHE"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recs"


@dataclass(frozen=True)
class Lookup:
    """Where a dataset was looked for, in order, and the first place that has it (or None)."""

    name: str
    places: tuple[tuple[str, Path], ...]  # (how the place is named, dataset folder)
    found: tuple[str, Path] | None

    def where(self) -> str:
        """The places, for a one-line message."""
        shown = [f"{label} {path}" for label, path in self.places]
        if not any(label == "RECS_TEST_DATA" for label, _ in self.places):
            shown.insert(0, "RECS_TEST_DATA (unset)")
        return ", ".join(shown)


def find_dataset(name: str, env: Mapping[str, str] = os.environ) -> Lookup:
    """Look for the real dataset `name` (ml-latest-small or ml-100k) in this order:

    1. $RECS_TEST_DATA/<name> (RECS_TEST_DATA: a folder holding ml-latest-small/, ml-100k/);
    2. ../shared/data/<name> beside the checkout;
    3. <cache>/<name>, the entry the job's verified download fills (`user_cache(env)`): for
       ml-latest-small, the README's first command (`recs run` with no --data) does.
    """
    places: list[tuple[str, Path]] = []
    if env.get("RECS_TEST_DATA"):
        places.append(("RECS_TEST_DATA", Path(env["RECS_TEST_DATA"]).expanduser() / name))
    places.append(("../shared/data", REPO.parent / "shared" / "data" / name))
    places.append(("recs cache", user_cache(env) / name))
    found = next(((label, path) for label, path in places if (path / MARKERS[name]).is_file()),
                 None)
    return Lookup(name, tuple(places), found)
