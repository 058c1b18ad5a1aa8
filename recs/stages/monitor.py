"""The metrics file: one run's health in Prometheus text format, for a monitor to scrape.

Written after every run, published or not (`--metrics-file`, RECS_METRICS_FILE), in the
node_exporter textfile-collector convention: a `*.prom` file replaced atomically (a temporary
file in the same folder, then a rename), every metric a gauge with HELP and TYPE lines, every
name prefixed `recs_`. Point the collector's `--collector.textfile.directory` at its folder.

    recs_last_run_start_timestamp_seconds      when the last run started (Unix time)
    recs_last_run_end_timestamp_seconds        when it ended
    recs_last_success_timestamp_seconds        when the last published run ended (kept
                                               from the previous file when this run failed)
    recs_last_run_exit_code                    0 ok, 1 unexpected, 2 input, 3 gate, 4 lock,
                                               5 environment (disk full, read-only),
                                               6 cluster lost work (--ray)
    recs_last_run_success                      1 when the run published, else 0
    recs_last_run_duration_seconds             wall time of the run
    recs_stage_duration_seconds{stage="..."}   wall time of each stage that ran
    recs_peak_rss_bytes                        peak resident memory of the process
    recs_ratings, recs_users, recs_movies, recs_lists, recs_lists_changed, ...
                                               counts, as far as the run got
    recs_quality_hr, recs_quality_coverage, recs_quality_holdout_pairs, recs_quality_min_hr
                                               the quality gate's figures

Alert on `time() - recs_last_success_timestamp_seconds > 26 * 3600` and on
`recs_lists_changed / (recs_lists_changed + recs_lists_unchanged) > 0.5` (docs/operating.md).
"""

from __future__ import annotations

import logging
import math
import os
import resource
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "recs_"
SUCCESS = f"{PREFIX}last_success_timestamp_seconds"

# count name in the manifest -> help text; each becomes recs_<name>
COUNTS = {
    "ratings": "ratings read (after dropping duplicates and unknown movies)",
    "users": "users with ratings",
    "movies": "movies in the movie list",
    "movies_embedded": "movies with a vector",
    "lists": "movies with a list",
    "recommendations": "recommendations over all lists",
    "lists_added": "lists that are new since the last published run",
    "lists_removed": "lists that are gone since the last published run",
    "lists_changed": "lists whose content changed since the last published run",
    "lists_unchanged": "lists identical to the last published run's",
    "files_reused": "files hard-linked from the last published run instead of written",
}
QUALITY = {
    "hr": "quality gate: next-watch HR@10 on each user's last pair (in-sample)",
    "coverage": "quality gate: share of listed movies that appear in some list (coverage@10)",
    "holdout_pairs": "quality gate: users' last pairs the hit rate is measured on",
    "min_hr": "quality gate: the --min-hr bar (absent when the gate is off)",
}


@dataclass
class RunReport:
    """What a run did, filled in as it goes; whatever is known when it ends is written."""

    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: datetime | None = None
    exit_code: int | None = None
    stages: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)

    def finish(self, exit_code: int) -> None:
        self.ended, self.exit_code = datetime.now(UTC), exit_code


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def render(report: RunReport, last_success: float | None) -> str:
    """The Prometheus text exposition of `report`; `last_success`: Unix time of the last
    published run before this one (used when this one failed), or None."""
    ended = report.ended or datetime.now(UTC)
    ok = report.exit_code == 0
    success = ended.timestamp() if ok else last_success
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        if not samples:
            return
        lines.append(f"# HELP {PREFIX}{name} {_escape_help(help_text)}")
        lines.append(f"# TYPE {PREFIX}{name} gauge")
        for labels, value in samples:
            shown = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            lines.append(f"{PREFIX}{name}{{{shown}}} {_number(value)}" if shown
                         else f"{PREFIX}{name} {_number(value)}")

    gauge("last_run_start_timestamp_seconds", "Unix time the last run started",
          [({}, report.started.timestamp())])
    gauge("last_run_end_timestamp_seconds", "Unix time the last run ended",
          [({}, ended.timestamp())])
    gauge("last_success_timestamp_seconds",
          "Unix time the last run that published ended (absent before the first)",
          [({}, success)] if success is not None else [])
    gauge("last_run_exit_code",
          "exit code of the last run: 0 ok, 1 unexpected, 2 bad input, 3 quality gate, "
          "4 lock held, 5 environment (disk full, read-only), 6 cluster lost work",
          [({}, report.exit_code if report.exit_code is not None else 1)])
    gauge("last_run_success", "1 when the last run published, else 0", [({}, 1 if ok else 0)])
    gauge("last_run_duration_seconds", "wall seconds of the last run",
          [({}, (ended - report.started).total_seconds())])
    gauge("stage_duration_seconds", "wall seconds of each stage of the last run",
          [({"stage": name}, secs) for name, secs in report.stages.items()])
    gauge("peak_rss_bytes", "peak resident memory of the last run", [({}, peak_rss_bytes())])
    for name, help_text in COUNTS.items():
        if name in report.counts:
            gauge(name, f"last run: {help_text}", [({}, report.counts[name])])
    for name, help_text in QUALITY.items():
        value = report.quality.get(name)
        if value is not None:
            gauge(f"quality_{name}", help_text, [({}, value)])
    return "\n".join(lines) + "\n"


def read_last_success(path: Path) -> float | None:
    """recs_last_success_timestamp_seconds from an earlier metrics file, or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == SUCCESS:
            try:
                found = float(value.split()[0])
            except (ValueError, IndexError):
                return None
            return found if math.isfinite(found) else None
    return None


def write_metrics(path: Path, report: RunReport) -> None:
    """Replace `path` with the metrics of `report` atomically (temporary file beside it,
    fsync, rename): a collector reads the old file or the new one, never half of one.
    A failure to write is logged, never raised: the run's own outcome stands."""
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # not *.prom: never collected
    try:
        text = render(report, read_last_success(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            view = memoryview(text.encode())
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        log.warning("could not write the metrics file %s: %s", path, err)
        try:
            tmp.unlink()
        except OSError:
            pass
        return
    log.info("wrote metrics to %s", path)


def figures(quality: dict[str, Any] | None, min_hr: float | None) -> dict[str, float]:
    """The gate's figures for the report: hr, coverage, holdout_pairs, and the bar."""
    found = {k: float(v) for k, v in (quality or {}).items() if k in QUALITY}
    if min_hr is not None:
        found["min_hr"] = float(min_hr)
    return found


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 2**53):
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
