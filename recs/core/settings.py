"""One settings object for every stage: defaults here, `RECS_*` variables and CLI flags on top."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recs.core.location import Location, is_s3, parse_location


def default_cache_dir() -> Path:
    """The user's cache directory for downloaded datasets (XDG on Linux)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recs"


class Settings(BaseSettings):
    """Everything a run can change. Precedence: CLI flag > `RECS_<NAME>` > default."""

    model_config = SettingsConfigDict(env_prefix="RECS_", extra="forbid")

    data: str | None = Field(
        None,
        description="MovieLens folder, .zip, or http(s) URL of a zip (default: ml-latest-small)",
    )
    cache: Path = Field(default_factory=default_cache_dir, description="download cache folder")
    db: str = Field("~/.lancedb", description="LanceDB database folder, or s3://BUCKET/PREFIX")
    table: str = Field("movielens_small", description="LanceDB table name")
    out: str = Field(
        "output", description="folder, or s3://BUCKET/PREFIX, that holds run folders and `latest`"
    )
    dim: int = Field(64, ge=2, le=1024, description="embedding dimension (SVD rank)")
    top_k: int = Field(10, ge=1, le=1000, description="neighbours per movie")
    engine: Literal["exact", "lancedb", "ivf"] = Field(
        "exact",
        description="top-k engine: in-process exact, or LanceDB batch search (same lists), or "
        "ivf: LanceDB's approximate IVF index (recall@10 about 0.96, for catalogs too large "
        "for exact all-pairs; runs exact below 5,000 movies)",
    )
    batch_size: int = Field(1024, ge=1, description="query vectors per top-k batch")
    threads: int = Field(2, ge=1, description="BLAS, DuckDB and sparse-product threads")
    write_threads: int = Field(
        4, ge=1, le=64, description="threads creating the JSON files (system calls, not CPU)"
    )
    seed: int = Field(0, description="seed for every random choice (SVD start vector, holdouts)")
    keep: int = Field(7, ge=1, description="run folders to keep after a successful publish")
    # the recipe: how each default was chosen is in docs/quality.md
    svd_binary: bool = Field(True, description="factor 1 where rated instead of the stars")
    svd_user_power: float = Field(
        0.5, ge=0, le=2, description="divide each user's row by (her ratings) ** this"
    )
    svd_movie_power: float = Field(
        0.25, ge=0, le=2, description="divide each movie's column by (its ratings) ** this"
    )
    svd_sv_power: float = Field(0.5, ge=0, le=2, description="scale vectors by s ** this")
    svd_solver: Literal["randomized", "arpack"] = Field(
        "randomized", description="truncated SVD: randomized block Krylov, or ARPACK svds"
    )
    svd_power_iters: int = Field(
        1, ge=0, le=20, description="randomized SVD: block Krylov steps (2 matrix passes each)"
    )
    svd_oversample: int = Field(
        16, ge=0, le=512, description="randomized SVD: extra columns beyond --dim in the block"
    )
    min_support: int = Field(
        1, ge=1, description="movies with fewer ratings get no list and are in no list"
    )
    pool: int = Field(50, ge=1, description="SVD candidates per movie the re-rank orders")
    rerank_pop_power: float = Field(
        0.2, ge=0, le=2, description="re-rank score: divide by (ratings of the candidate) ** this"
    )
    rerank_cos_power: float = Field(
        0.25, ge=0, le=4, description="re-rank score: multiply by max(cosine, 0) ** this"
    )
    close_window: int = Field(
        1, ge=1, le=50,
        description="close watchers rated both movies at most this many ratings apart",
    )
    close_weight: float = Field(
        5.0, ge=0, description="re-rank score: co-watchers + this x close watchers (0: off)"
    )
    next_window: int = Field(
        3, ge=1, le=50,
        description="next watchers rated the candidate 1 to this many ratings after the movie "
        "(equal times as close_ties says)",
    )
    next_weight: float = Field(
        3.0, ge=0, description="re-rank score: + this x next watchers (0: off)"
    )
    next_pool: int = Field(
        50, ge=0, le=1000,
        description="candidates added to each SVD pool: the movies with most next watchers",
    )
    close_ties: Literal["unordered", "by_id"] = Field(
        "unordered",
        description="ratings with equal times: unordered (0 apart, window counted in tie "
        "groups) or by_id (ordered by movie id, an order the lists then learn)",
    )
    history_days: int = Field(
        90, ge=0, description="days of OUT/history/run_date=... partitions to keep"
    )
    precompress: bool = Field(False, description="also write a .gz beside every JSON file")
    cache_control: str = Field(
        "public, max-age=3600",
        description="Cache-Control of the objects published to an s3:// --out (lists change "
        "nightly; changes.json says which to invalidate)",
    )
    s3_retry_seconds: float = Field(
        60.0, gt=0, description="keep retrying a failing object-store request (5xx, "
        "throttling, no connection) this long, with backoff, before the run fails",
    )
    ray: str | None = Field(
        None,
        description="rank on a Ray cluster: auto, HOST:PORT, ray://HOST:10001, or local (a "
        "throwaway cluster for the run); needs the `ray` extra",
    )
    min_hr: float | None = Field(
        None, ge=0, le=1,
        description="refuse to publish when the gate's next-watch HR@10 is below this",
    )
    metrics_file: Path | None = Field(
        None,
        description="write Prometheus text metrics here after every run, ok or not "
        "(node_exporter textfile collector: name it *.prom)",
    )

    @model_validator(mode="after")
    def _cluster_to_bucket(self) -> Settings:
        if self.precompress and self.ray and is_s3(self.out):
            raise ValueError("--precompress with --ray and an s3:// --out is not supported: the "
                             "workers upload plain JSON; let the CDN compress instead")
        return self

    @field_validator("out", "db", mode="before")
    @classmethod
    def _path_text(cls, value: object) -> object:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    def out_location(self) -> Location:
        """OUT as a local folder or a BucketURI (InputError for a URI the job cannot handle)."""
        return parse_location(self.out, "--out")

    def db_location(self) -> Location:
        return parse_location(self.db, "--db")

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable that sets field `name`: top_k -> RECS_TOP_K."""
        return f"{cls.model_config['env_prefix']}{name.upper()}"


def default_text(name: str) -> str:
    """A field's default as `--help` and the README show it (the home folder as ~)."""
    default = Settings.model_fields[name].get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default).replace(str(Path.home()), "~", 1)
