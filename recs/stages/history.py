"""Each run's lists kept as a Hive-partitioned Parquet dataset for trend reports:

    OUT/history/run_date=YYYY-MM-DD/recommendations.parquet

One partition per day (a second run that day replaces it). Read them by column name, since
older partitions lack columns added later (close_watchers or next_watchers reads as NULL
there; without union_by_name DuckDB takes the first file's columns and silently drops the
newer ones):

    select * from read_parquet('OUT/history/*/*.parquet', hive_partitioning = true,
                               union_by_name = true)
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "run_date="


def add_to_history(out: Path, run_dir: Path, run_date: date) -> Path:
    """Hard-link the run's recommendations.parquet into its day's partition, atomically.

    A hard link costs no copy and outlives the run folder's pruning.
    """
    part = out / "history" / f"{PREFIX}{run_date.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    src, final = run_dir / "recommendations.parquet", part / "recommendations.parquet"
    for stale in part.glob(".recommendations.parquet.*"):  # a killed run's (we hold the lock)
        stale.unlink()
    if final.exists() and os.path.samefile(src, final):
        return part  # the lists did not change: the partition already holds this very file
    tmp = part / f".recommendations.parquet.{os.getpid()}"
    os.link(src, tmp, follow_symlinks=False)
    os.replace(tmp, final)
    return part


def prune_history(out: Path, today: date, keep_days: int) -> list[str]:
    """Delete partitions older than `keep_days` days before `today`; returns their names."""
    root = out / "history"
    if not root.is_dir():
        return []
    cutoff = today - timedelta(days=keep_days)
    doomed = []
    for part in root.iterdir():
        try:
            day = date.fromisoformat(part.name.removeprefix(PREFIX))
        except ValueError:
            continue  # not ours: leave it alone
        if part.name.startswith(PREFIX) and day < cutoff and not part.is_symlink():
            shutil.rmtree(part)
            doomed.append(part.name)
    if doomed:
        log.info("removed %d history partitions older than %s", len(doomed), cutoff)
    return sorted(doomed)
