"""The job's work per contiguous range of query movies, for an engine to run anywhere:
`rank_range` (candidate top-k + re-rank) and `write_range` (the range's movie JSON files,
written straight into the run's staging folder, and its rows of recommendations.parquet).

Module-level functions of (shared inputs, start, stop): a cluster engine ships them by name
and the inputs once per run. Each is a pure function of its inputs, so a retried or
re-ordered range gives the same bytes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from threadpoolctl import threadpool_limits

from recs.core.location import BucketURI, Upload
from recs.core.settings import Settings
from recs.core.types import Embeddings, RankedNeighbors
from recs.engines import Executor, open_bucket
from recs.stages import recipe, store, upload, write

log = logging.getLogger(__name__)

RankInputs = tuple[recipe.Prepared, Settings]


def rank_range(shared: RankInputs, start: int, stop: int) -> RankedNeighbors:
    """recipe.rank for queries[start:stop] on one core (a task holds one CPU)."""
    prep, settings = shared
    with threadpool_limits(1, user_api="blas"):
        pools = recipe.candidates(prep, settings, start, stop)
        return recipe.order(prep, settings, pools, threads=1)


def rank(
    executor: Executor, prep: recipe.Prepared, settings: Settings, progress=None
) -> RankedNeighbors:
    """Every query movie's ranked list, range by range on `executor` (unsorted: pass the
    result to write.sort_lists). progress(n): query movies done, after each range."""
    parts = executor.ranges(len(prep.queries))
    shared = executor.share((prep, settings))  # once per run, never once per range
    log.info("ranking %d movies in %d shards on %s (%d CPUs)", len(prep.queries), len(parts),
             executor.name, executor.cpus())

    def done(n: int, total: int) -> None:
        log.info("shards %d/%d ranked", n, total)
        if progress:
            progress(len(prep.queries) // total)

    lists = executor.map(rank_range, shared, parts, done)
    return RankedNeighbors.concat(lists)


@dataclass(frozen=True)
class BucketTarget:
    """Where the workers upload their ranges' objects when OUT is a bucket: straight to
    OUT/latest/, each object only when its sha256 differs from the served manifest's, or
    when a killed upload may have touched it (`resend`). Workers read the AWS_* variables
    of their own node."""

    out: BucketURI
    retry_seconds: float
    cache_control: str
    served: dict[str, Any]  # the committed manifest's file map: rel -> {bytes, sha256}
    resend: frozenset[str]
    aliases: dict[str, str]  # json/v1/imdb/... -> json/v1/movies/<id>.json (write.imdb_aliases)
    keys: frozenset[str]  # every movie file and alias the workers handle


# (staging folder, previous run folder, its manifest's file map, movies, sorted lists, threads,
# the bucket target or None)
WriteInputs = tuple[Path, Path | None, dict | None, pa.Table, RankedNeighbors, int,
                    BucketTarget | None]


def write_range(
    shared: WriteInputs, start: int, stop: int
) -> tuple[dict[str, Any], int, pa.Table, list[str]]:
    """Write lists[start:stop]'s json/v1/movies files into the staging folder (it must be
    reachable from every node), or upload them (and their IMDb aliases) to the bucket target;
    return their file metas, how many were hard-linked from the previous run, the range's
    recommendations.parquet rows, and the keys uploaded (relative to latest/)."""
    stage, previous_dir, previous_files, movies, lists, threads, target = shared
    part = write.take_lists(lists, slice(start, stop))
    genres = write.SharedGenres()
    payloads = write.movie_payloads(movies, part, genres)
    rows = write.recommendations_table(part, movies, genres)
    if target is not None:
        files, sent = _upload_range(target, payloads)
        return files, 0, rows, sent
    written = write.FileLog(stage, previous_dir, previous_files)
    for rel, _ in payloads:  # a retried range: what an attempt killed mid-write left behind
        (stage / rel).unlink(missing_ok=True)
    written.write_many(payloads, threads)
    return written.files, written.reused, rows, []


def _upload_range(
    target: BucketTarget, payloads: list[tuple[str, bytes]]
) -> tuple[dict[str, Any], list[str]]:
    """PUT the range's changed movie files and IMDb aliases; their metas and the keys sent."""
    by_movie = dict(payloads)
    objects = payloads + [(alias, by_movie[movie]) for alias, movie in target.aliases.items()
                          if movie in by_movie]
    files = {rel: write.file_meta(data) for rel, data in objects}
    send = [(rel, data) for rel, data in objects
            if target.served.get(rel) != files[rel] or rel in target.resend]
    bucket = open_bucket(target.out, target.retry_seconds)
    bucket.put_many([Upload(target.out.key(f"latest/{rel}"), data=data,
                            headers=upload.headers(rel, target.cache_control))
                     for rel, data in send])
    return files, [rel for rel, _ in send]


def write_outputs(
    executor: Executor, written: write.FileLog, movies: pa.Table, emb: Embeddings,
    lists: RankedNeighbors, threads: int, target: BucketTarget | None = None,
) -> set[str]:
    """The same files as the job's serial writer, the movie JSON range by range on
    `executor`; the Parquet files, IMDb links, index.json and assets on the driver, after
    every range succeeded. lists: sorted by movie id (write.sort_lists). With a bucket
    `target`, the workers upload the movie files and IMDb aliases instead of writing them
    (the driver records their sha256); returns the keys they uploaded."""
    started = time.perf_counter()
    write.json_folders(written)
    parts = executor.ranges(len(lists.movie_ids))
    shared = executor.share((written.root, written.previous, written.previous_files or None,
                             movies, lists, threads, target))

    def done(n: int, total: int) -> None:
        log.info("shards %d/%d written", n, total)

    results = executor.map(write_range, shared, parts, done)
    table = pa.concat_tables([r[2] for r in results]).combine_chunks()  # one chunk: same bytes
    write.write_parquet(written, "recommendations.parquet", table)
    write.write_parquet(written, "movies.parquet", write.movies_table(movies, lists))
    write.write_parquet(written, "embeddings.parquet", store.vector_table(emb))
    sent: set[str] = set()
    for files, reused, _, uploaded in results:
        written.files.update(files)
        written.reused += reused
        sent.update(uploaded)
    if target is None:
        write.write_json_links(written, movies, lists.movie_ids)
    else:  # the aliases went up with their movies
        write.write_json_index(written, movies, lists.movie_ids)
    write.write_assets(written)
    log.info("wrote %d JSON lists in %d shards in %.2f s", len(lists.movie_ids), len(parts),
             time.perf_counter() - started)
    return sent
