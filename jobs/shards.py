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
from pathlib import Path
from typing import Any

import pyarrow as pa
from threadpoolctl import threadpool_limits

from recs.core.settings import Settings
from recs.core.types import Embeddings, RankedNeighbors
from recs.engines import Executor
from recs.stages import recipe, store, write

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


# (staging folder, previous run folder, its manifest's file map, movies, sorted lists, threads)
WriteInputs = tuple[Path, Path | None, dict | None, pa.Table, RankedNeighbors, int]


def write_range(
    shared: WriteInputs, start: int, stop: int
) -> tuple[dict[str, Any], int, pa.Table]:
    """Write lists[start:stop]'s json/v1/movies files into the staging folder (it must be
    reachable from every node); return their file metas, how many were hard-linked from the
    previous run, and the range's recommendations.parquet rows."""
    stage, previous_dir, previous_files, movies, lists, threads = shared
    part = write.take_lists(lists, slice(start, stop))
    written = write.FileLog(stage, previous_dir, previous_files)
    genres = write.SharedGenres()
    payloads = write.movie_payloads(movies, part, genres)
    for rel, _ in payloads:  # a retried range: what an attempt killed mid-write left behind
        (stage / rel).unlink(missing_ok=True)
    written.write_many(payloads, threads)
    return written.files, written.reused, write.recommendations_table(part, movies, genres)


def write_outputs(
    executor: Executor, written: write.FileLog, movies: pa.Table, emb: Embeddings,
    lists: RankedNeighbors, threads: int,
) -> None:
    """The same files as the job's serial writer, the movie JSON range by range on
    `executor`; the Parquet files, IMDb links, index.json and assets on the driver, after
    every range succeeded. lists: sorted by movie id (write.sort_lists)."""
    started = time.perf_counter()
    write.json_folders(written)
    parts = executor.ranges(len(lists.movie_ids))
    shared = executor.share((written.root, written.previous, written.previous_files or None,
                             movies, lists, threads))

    def done(n: int, total: int) -> None:
        log.info("shards %d/%d written", n, total)

    results = executor.map(write_range, shared, parts, done)
    table = pa.concat_tables([r[2] for r in results]).combine_chunks()  # one chunk: same bytes
    write.write_parquet(written, "recommendations.parquet", table)
    write.write_parquet(written, "movies.parquet", write.movies_table(movies, lists))
    write.write_parquet(written, "embeddings.parquet", store.vector_table(emb))
    for files, reused, _ in results:
        written.files.update(files)
        written.reused += reused
    write.write_json_links(written, movies, lists.movie_ids)
    write.write_assets(written)
    log.info("wrote %d JSON lists in %d shards in %.2f s", len(lists.movie_ids), len(parts),
             time.perf_counter() - started)
