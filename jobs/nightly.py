"""The nightly job: MovieLens -> DuckDB -> SVD -> top-k -> Parquet + JSON + LanceDB.

Everything is computed and written into a staging folder first; `latest` and the LanceDB
table change only once every file is complete, so readers see yesterday's output or today's.
"""

from __future__ import annotations

import logging
import platform
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

from recs.core.errors import QualityGateError, RecsError
from recs.core.settings import Settings
from recs.core.types import Embeddings, RankedNeighbors
from recs.engines import open_executor
from recs.jobs import shards
from recs.quality import metrics
from recs.stages import history, monitor, publish, recipe, store, write
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
        try:
            yield
        finally:  # a stage that fails is timed too (the metrics file shows where it stopped)
            self.seconds[name] = round(time.perf_counter() - started, 4)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    manifest: dict[str, Any]


def run(settings: Settings, progress: Progress | None = None) -> RunResult:
    """Run the whole job once; raises a RecsError subclass for anything the user can fix.

    With `settings.metrics_file`, the run's metrics are written there however it ends.
    """
    report = monitor.RunReport()
    try:
        result = _run(settings, report, progress)
    except BaseException as err:
        if isinstance(err, QualityGateError) and err.figures:
            report.quality = monitor.figures(err.figures, settings.min_hr)
        report.finish(exit_code(err))
        raise
    else:
        report.finish(0)
    finally:
        if settings.metrics_file is not None:
            monitor.write_metrics(settings.metrics_file, report)
    return result


def exit_code(err: BaseException) -> int:
    """The exit code the CLI gives for `err` (what the metrics file reports)."""
    if isinstance(err, RecsError):
        return err.exit_code
    if isinstance(err, KeyboardInterrupt):
        return 130
    if isinstance(err, SystemExit):
        return err.code if isinstance(err.code, int) else 1
    return 1


def _run(settings: Settings, report: monitor.RunReport, progress: Progress | None) -> RunResult:
    started_at, t0 = report.started, time.perf_counter()
    run_id = publish.new_run_id(started_at)
    out, stages = settings.out, Stages(report.stages)
    db = settings.resolved_db()
    # the cluster first: an address that cannot be reached fails before anything is touched
    with open_executor(settings.ray, cpus=settings.threads) as executor, \
            publish.run_lock(out), threadpool_limits(settings.threads, user_api="blas"):
        with publish.environment_faults(out, "--out", out):  # we hold the lock: all are dead
            for path in publish.remove_leftovers(out):
                log.info("removed %s, left behind by a run that died", path)
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
            if executor.name == "local":  # the reference path, unchanged
                with stages("neighbors"):
                    pools = recipe.candidates(prep, settings, progress=progress)
                with stages("rerank"):
                    lists = write.sort_lists(recipe.order(prep, settings, pools))
            else:  # top-k and re-rank together, range by range on the cluster
                with stages("neighbors"):
                    lists = write.sort_lists(shards.rank(executor, prep, settings, progress))
            report.counts.update(_input_counts(ratings, movies, emb, lists))
            with stages("quality"):
                pairs = data.last_pairs
                figures = metrics.gate(pairs["query_id"], pairs["target_id"], lists,
                                       settings.min_hr)
                report.quality = monitor.figures(figures, settings.min_hr)
            inputs = hashes.result()
        publish.check_free_space(out, previous, inputs, settings.model_dump(mode="json"))
        with publish.staging(out, run_id) as stage:  # removed again if anything below fails
            with stages("write"):
                written = write.FileLog(stage, previous_dir, previous and previous["files"])
                if executor.name == "local":
                    _write_outputs(written, movies, emb, lists, settings.write_threads)
                else:  # the movie JSON written range by range on the cluster
                    shards.write_outputs(executor, written, movies, emb, lists,
                                         settings.write_threads)
                changes = write.write_changes(written, run_id, previous)
                if settings.precompress:
                    write.precompress(written)
            with (stages("lancedb"), publish.environment_faults(db, "--db", out),
                  publish.db_lock(db)):
                table = store.write_table(db, settings.table, store.content_table(emb, movies))
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
                "lancedb": {"db": str(db), "table": settings.table,
                            "version": table.version},
                "versions": _versions(),
                "stages": stages.seconds,
                "peak_rss_bytes": monitor.peak_rss_bytes(),
                "files": written.files,
            }
            report.counts.update(manifest["counts"])
            write.FileLog(stage).write("manifest.json", write.dumps(manifest))
            run_dir = publish.publish(out, stage, run_id)
        with publish.housekeeping(out, "--out", out, run_id):
            history.add_to_history(out, run_dir, started_at.date())
            history.prune_history(out, started_at.date(), settings.history_days)
            publish.prune(out, settings.keep)
        with publish.housekeeping(db, "--db", out, run_id), \
                publish.db_lock(db, wait=0) as held:
            if held:  # housekeeping: another run's turn, so the next run prunes instead
                publish.prune_table_versions(out, db, table)
    return RunResult(run_id, run_dir, manifest)


def _input_counts(ratings, movies, emb, lists) -> dict[str, int]:
    return {
        "ratings": int(ratings.matrix.nnz),
        "users": int(ratings.matrix.shape[0]),
        "movies": movies.num_rows,
        "movies_embedded": len(emb.movie_ids),
        "lists": len(lists.movie_ids),
        "recommendations": int(lists.neighbor_ids.size),
    }


def _counts(ratings, movies, emb, lists, changes, written: write.FileLog) -> dict[str, int]:
    return {
        **_input_counts(ratings, movies, emb, lists),
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
        return publish.read_manifest(run_dir)
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


def _versions() -> dict[str, str]:
    names = ["recs", "duckdb", "numpy", "scipy", "lancedb", "pyarrow", "pydantic"]
    return {"python": platform.python_version(), **{n: version(n) for n in names}}
