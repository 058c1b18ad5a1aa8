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
from recs.core.location import Bucket, BucketURI, Location, is_s3, parse_location
from recs.core.settings import Settings
from recs.core.types import Embeddings, RankedNeighbors, Ratings
from recs.engines import Executor, open_bucket, open_executor
from recs.jobs import shards
from recs.quality import metrics
from recs.stages import history, lease, monitor, publish, recipe, store, upload, write
from recs.stages.embed import embed
from recs.stages.ingest import load_dataset
from recs.stages.source import dataset_files, from_bucket, resolve_data, sha256_file
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
    run_dir: Path  # the local run folder (under the mirror of OUT when OUT is a bucket)
    manifest: dict[str, Any]
    published_to: str  # OUT/latest, as a path or an s3:// URI
    upload: dict[str, Any] | None = None  # objects put, unchanged and deleted (a bucket OUT)


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
    stages = Stages(report.stages)
    # a URI the job cannot handle is refused here, before anything is touched
    out_at, db = settings.out_location(), settings.db_location()
    data_at = parse_location(settings.data, "--data") if is_s3(settings.data) else None
    remote = open_buckets([out_at, db, data_at], settings.s3_retry_seconds)
    out_bucket = remote.get(out_at) if isinstance(out_at, BucketURI) else None
    out = mirror_folder(settings.cache, out_at) if out_bucket else out_at
    # the cluster next: an address that cannot be reached fails before anything is touched
    with open_executor(settings.ray, cpus=settings.threads) as executor, \
            out_lease(out_bucket, run_id) as lease_held, publish.run_lock(out), \
            threadpool_limits(settings.threads, user_api="blas"):
        with publish.environment_faults(out, "--out", out):  # we hold the lock: all are dead
            for path in publish.remove_leftovers(out):
                log.info("removed %s, left behind by a run that died", path)
        previous_dir = publish.latest_run(out)
        previous = _manifest_of(previous_dir)
        # what the bucket serves is what changes.json compares against
        served = upload.remote_manifest(out_bucket, out_at) if out_bucket else previous
        store.preload()  # lancedb's slow import overlaps fetch, read, embed and top-k
        with stages("fetch"):
            folder = data_folder(settings, remote.get(data_at) if data_at else None)
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
            sizes, pairs, notes = _sizes(ratings), data.last_pairs, data.problems
            del data, ratings  # prepare was the last use of the ratings (400 MB at 25M)
            lists = _lists(executor, prep, settings, stages, progress)
            del prep  # the co-watch counts and the timeline, freed before the files are written
            report.counts.update(_input_counts(sizes, movies, emb, lists))
            with stages("quality"):
                figures = metrics.gate(pairs["query_id"], pairs["target_id"], lists,
                                       settings.min_hr)
                report.quality = monitor.figures(figures, settings.min_hr)
            inputs = hashes.result()
        publish.check_free_space(out, previous, inputs, settings.model_dump(mode="json"))
        with publish.staging(out, run_id) as stage:  # removed again if anything below fails
            with stages("write"):
                written = write.FileLog(stage, previous_dir, previous and previous["files"])
                done, sent = frozenset(), set()  # files the cluster's workers uploaded
                if executor.name == "local":
                    _write_outputs(written, movies, emb, lists, settings.write_threads)
                else:  # the movie JSON written (or uploaded) range by range on the cluster
                    target = bucket_target(out_bucket, out_at, settings, served, movies,
                                           lists, run_id)
                    done = target.keys if target else frozenset()
                    sent = shards.write_outputs(executor, written, movies, emb, lists,
                                                settings.write_threads, target)
                changes = write.write_changes(written, run_id, served)
                if settings.precompress:
                    write.precompress(written, settings.threads)
            with (stages("lancedb"), publish.environment_faults(db, "--db", out),
                  lease.db_lock(db, remote.get(db), run_id)):
                table = store.write_table(db, settings.table, store.content_table(emb, movies))
            manifest = {
                "run_id": run_id,
                "started_at": started_at.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(),
                "seconds": round(time.perf_counter() - t0, 4),
                "source": {"data": settings.data, "folder": str(folder), "files": inputs},
                "settings": settings.model_dump(mode="json"),
                "counts": _counts(sizes, movies, emb, lists, changes, written),
                "quality": figures,
                "input_notes": [p.as_dict() for p in notes],
                "lancedb": {"db": str(db), "table": settings.table,
                            "version": table.version},
                "versions": _versions(),
                "stages": stages.seconds,
                "peak_rss_bytes": monitor.peak_rss_bytes(),
                "files": written.files,
            }
            report.counts.update(manifest["counts"])
            write.FileLog(stage).write("manifest.json", write.dumps(manifest))
            # a local LanceDB folder may sit on another file system: flush it too
            run_dir = publish.publish(out, stage, run_id,
                                      also=(db,) if isinstance(db, Path) else ())
        report_up = None
        if out_bucket:
            with stages("upload"):
                report_up = upload.publish_to_bucket(
                    out_bucket, out_at, run_dir, manifest, served, settings.cache_control,
                    lease_held.check, done, len(sent))
        with publish.housekeeping(out, "--out", out, run_id):
            history.add_to_history(out, run_dir, started_at.date())
            history.prune_history(out, started_at.date(), settings.history_days)
            publish.prune(out, settings.keep)
            if out_bucket:
                upload.add_history(out_bucket, out_at, run_id, started_at.date())
                upload.prune_bucket(out_bucket, out_at, run_id, settings.keep,
                                    started_at.date(), settings.history_days)
        with publish.housekeeping(db, "--db", out, run_id), \
                lease.db_lock(db, remote.get(db), run_id, wait=0) as held:
            if held:  # housekeeping: another run's turn, so the next run prunes instead
                publish.prune_table_versions(out, db, table)
    where = f"{out_at}/latest" if out_bucket else str(out / "latest")
    return RunResult(run_id, run_dir, manifest, where,
                     report_up.as_dict() if report_up else None)


def data_folder(settings: Settings, bucket: Bucket | None = None) -> Path:
    """The local MovieLens folder for --data: an s3:// prefix copied into the verified cache
    (through `bucket`, opened here when not given), anything else by resolve_data."""
    if not is_s3(settings.data):
        return resolve_data(settings.data, settings.cache)
    uri = parse_location(settings.data, "--data")
    assert isinstance(uri, BucketURI)
    return from_bucket(bucket or open_buckets([uri], settings.s3_retry_seconds)[uri],
                       settings.cache)


def open_buckets(places: list[Location | None], retry_seconds: float) -> dict[BucketURI, Bucket]:
    """A checked client per bucket URI among `places` (the object-store engine is imported
    only when one is given): a missing bucket, wrong credentials or an endpoint that cannot
    be reached fail here, with one line, before any work."""
    found = {}
    for place in places:
        if isinstance(place, BucketURI) and place not in found:
            found[place] = open_bucket(place, retry_seconds)
            found[place].check()
    return found


def bucket_target(
    bucket: Bucket | None, out: Location, settings: Settings, served: dict[str, Any] | None,
    movies: pa.Table, lists: RankedNeighbors, run_id: str,
) -> shards.BucketTarget | None:
    """With a bucket OUT, the cluster's workers upload the movie files and IMDb aliases
    themselves: .pending.json names them first (upload.begin_upload)."""
    if bucket is None or not isinstance(out, BucketURI):
        return None
    aliases = write.imdb_aliases(movies, lists.movie_ids)
    keys = set(aliases) | {write.movie_file(m) for m in lists.movie_ids}
    resend = upload.begin_upload(bucket, out, run_id, keys)
    return shards.BucketTarget(out, settings.s3_retry_seconds, settings.cache_control,
                               served["files"] if served else {}, resend, aliases,
                               frozenset(keys))


def mirror_folder(cache: Path, out: BucketURI) -> Path:
    """The local OUT a bucket OUT is built in: runs are staged and published here first."""
    return Path(cache).expanduser() / "buckets" / out.bucket / (out.prefix or "_")


@contextmanager
def out_lease(bucket: Bucket | None, run_id: str) -> Iterator[lease.Lease | None]:
    """OUT/.lock as a lease object when OUT is a bucket (the local mirror has its flock)."""
    if bucket is None:
        yield None
        return
    with lease.lease(bucket, bucket.uri.key(".lock"), run_id, str(bucket.uri)) as held:
        yield held



def _sizes(ratings: Ratings) -> dict[str, int]:
    return {"ratings": int(ratings.matrix.nnz), "users": int(ratings.matrix.shape[0])}


def _input_counts(sizes: dict[str, int], movies, emb, lists) -> dict[str, int]:
    return {
        **sizes,
        "movies": movies.num_rows,
        "movies_embedded": len(emb.movie_ids),
        "lists": len(lists.movie_ids),
        "recommendations": int(lists.neighbor_ids.size),
    }


def _counts(sizes, movies, emb, lists, changes, written: write.FileLog) -> dict[str, int]:
    return {
        **_input_counts(sizes, movies, emb, lists),
        "lists_added": len(changes["added"]),
        "lists_removed": len(changes["removed"]),
        "lists_changed": len(changes["changed"]),
        "lists_unchanged": changes["unchanged"],
        "files_reused": written.reused,
    }


def _lists(
    executor: Executor, prep: recipe.Prepared, settings: Settings, stages: Stages,
    progress: Progress | None,
) -> RankedNeighbors:
    """Every listed movie's ranked neighbours, sorted by movie id."""
    if executor.name == "local":  # the reference path, unchanged
        with stages("neighbors"):
            pools = recipe.candidates(prep, settings, progress=progress)
        with stages("rerank"):
            return write.sort_lists(recipe.order(prep, settings, pools))
    with stages("neighbors"):  # top-k and re-rank together, range by range on the cluster
        return write.sort_lists(shards.rank(executor, prep, settings, progress))


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
    with write.parquet_beside(written, {  # the tables are made while the JSON is
        "recommendations.parquet": lambda: write.recommendations_table(lists, movies,
                                                                       shared_genres),
        "movies.parquet": lambda: write.movies_table(movies, lists),
        "embeddings.parquet": lambda: store.vector_table(emb),
    }):
        write.write_json(written, movies, lists, shared_genres, threads)
    write.write_assets(written)


def _describe(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _versions() -> dict[str, str]:
    names = ["recs", "duckdb", "numpy", "scipy", "lancedb", "pyarrow", "pydantic"]
    return {"python": platform.python_version(), **{n: version(n) for n in names}}
