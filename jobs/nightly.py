"""The nightly job: MovieLens -> DuckDB -> SVD -> top-k -> Parquet + JSON + LanceDB.

Everything is computed and written into a staging folder first; `latest` and the LanceDB
table change only once every file is complete, so readers see yesterday's output or today's.
"""

from __future__ import annotations

import json
import logging
import platform
import resource
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow as pa
from threadpoolctl import threadpool_limits

from recs.core.settings import Settings
from recs.core.types import Embeddings, RankedNeighbors
from recs.quality import metrics
from recs.stages import history, publish, recipe, store, write
from recs.stages.embed import embed
from recs.stages.ingest import load_dataset
from recs.stages.source import dataset_files, resolve_data, sha256_file
from recs.stages.validate import check_size

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class Stages:
    """Wall seconds per stage, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 4)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    manifest: dict[str, Any]


def run(settings: Settings, progress: Progress | None = None) -> RunResult:
    """Run the whole job once; raises a RecsError subclass for anything the user can fix."""
    started_at, t0 = datetime.now(UTC), time.perf_counter()
    run_id = publish.new_run_id(started_at)
    out, stages = settings.out, Stages()
    with publish.run_lock(out), threadpool_limits(settings.threads, user_api="blas"):
        previous_dir = publish.latest_run(out)
        previous = _manifest_of(previous_dir)
        with stages("fetch"):
            folder = resolve_data(settings.data, settings.cache)
            files = dataset_files(folder)
        with ThreadPoolExecutor(1) as pool:  # hash the inputs while DuckDB reads them
            hashes = pool.submit(lambda: {n: _describe(p) for n, p in files.items()})
            with stages("read"):
                data = load_dataset(folder, settings.threads)
                ratings, movies = data.ratings, data.movies
                check_size(ratings, settings.dim, settings.top_k)
            with stages("embed"):
                emb = embed(ratings, settings)
            with stages("prepare"):
                prep = recipe.prepare(ratings, emb, settings)
            with stages("neighbors"):
                pools = recipe.candidates(prep, settings, progress=progress)
            with stages("rerank"):
                lists = write.sort_lists(recipe.order(prep, settings, pools))
            with stages("quality"):
                pairs = data.last_pairs
                figures = metrics.gate(pairs["query_id"], pairs["target_id"], lists,
                                       settings.min_hr)
            inputs = hashes.result()
        stage = publish.staging_dir(out, run_id)
        with stages("write"):
            written = write.FileLog(stage, previous_dir, previous and previous["files"])
            _write_outputs(written, movies, emb, lists, settings.write_threads)
            changes = write.write_changes(written, run_id, previous)
            if settings.precompress:
                write.precompress(written)
        with stages("lancedb"), publish.db_lock(settings.resolved_db()):
            table = store.write_table(
                settings.resolved_db(), settings.table, store.content_table(emb, movies)
            )
        manifest = {
            "run_id": run_id,
            "started_at": started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.perf_counter() - t0, 4),
            "source": {"data": settings.data, "folder": str(folder), "files": inputs},
            "settings": settings.model_dump(mode="json"),
            "counts": _counts(ratings, movies, emb, lists, changes, written),
            "quality": figures,
            "input_notes": [p.as_dict() for p in data.problems],
            "lancedb": {"db": str(settings.resolved_db()), "table": settings.table,
                        "version": table.version},
            "versions": _versions(),
            "stages": stages.seconds,
            "peak_rss_bytes": _peak_rss(),
            "files": written.files,
        }
        write.FileLog(stage).write("manifest.json", write.dumps(manifest))
        run_dir = publish.publish(out, stage, run_id)
        history.add_to_history(out, run_dir, started_at.date())
        history.prune_history(out, started_at.date(), settings.history_days)
        publish.prune(out, settings.keep)
        with publish.db_lock(settings.resolved_db(), wait=0) as held:
            if held:  # housekeeping: another run's turn, so the next run prunes instead
                publish.prune_table_versions(out, settings.resolved_db(), table)
    return RunResult(run_id, run_dir, manifest)


def _counts(ratings, movies, emb, lists, changes, written: write.FileLog) -> dict[str, int]:
    return {
        "ratings": int(ratings.matrix.nnz),
        "users": int(ratings.matrix.shape[0]),
        "movies": movies.num_rows,
        "movies_embedded": len(emb.movie_ids),
        "lists": len(lists.movie_ids),
        "recommendations": int(lists.neighbor_ids.size),
        "lists_added": len(changes["added"]),
        "lists_removed": len(changes["removed"]),
        "lists_changed": len(changes["changed"]),
        "lists_unchanged": changes["unchanged"],
        "files_reused": written.reused,
    }


def _manifest_of(run_dir: Path | None) -> dict[str, Any] | None:
    """The manifest of a published run, or None (first run, or unreadable)."""
    if run_dir is None:
        return None
    try:
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("could not read the previous manifest in %s: every list counts as added",
                    run_dir)
        return None


def _write_outputs(
    written: write.FileLog, movies: pa.Table, emb: Embeddings, lists: RankedNeighbors,
    threads: int,
) -> None:
    shared_genres = write.SharedGenres()  # Parquet and JSON show the same shared genres per pair
    write.write_parquet(written, "recommendations.parquet",
                        write.recommendations_table(lists, movies, shared_genres))
    write.write_parquet(written, "movies.parquet", write.movies_table(movies, lists))
    write.write_parquet(written, "embeddings.parquet", store.vector_table(emb))
    write.write_json(written, movies, lists, shared_genres, threads)
    write.write_assets(written)


def _describe(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _versions() -> dict[str, str]:
    names = ["recs", "duckdb", "numpy", "scipy", "lancedb", "pyarrow", "pydantic"]
    return {"python": platform.python_version(), **{n: version(n) for n in names}}
