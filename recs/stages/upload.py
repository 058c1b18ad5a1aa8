"""Publishing a finished run to a bucket: only changed objects, the index last, deletes after.

The run is built and published in a local mirror of OUT first (the same staging, checks and
atomic `latest` switch as a local run). Then, under OUT's lease (see lease.py):

    OUT/runs/<run_id>/*.parquet      the run's Parquet files, for BI and history
    OUT/.pending.json                the keys about to change (see below)
    OUT/latest/<every changed file>  in parallel; json/v1/index.json, changes.json held back
    OUT/latest/json/v1/index.json    then changes.json, then the manifest: the commit
    OUT/latest/manifest.json
    OUT/runs/<run_id>/manifest.json  a run under runs/ is complete once its manifest is there
    (deletes)                        keys under latest/ that the manifest does not name
    OUT/history/run_date=D/recommendations.parquet   (a server-side copy), then pruning

A PUT replaces an object whole, so every key a CDN serves holds yesterday's bytes or today's:
while the changed lists go up, some lists are new and some old (a mix, never a broken or
missing object). Lists that disappear are deleted only after the new index is up, and a new
list is up before the index names it. "Changed" is decided by the sha256 in the committed
`latest/manifest.json`; keys a killed upload may have touched are first written to
`.pending.json`, and the next run uploads those again whatever the manifest says.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from recs.core.location import Bucket, BucketURI, Upload
from recs.stages.history import PREFIX as HISTORY_PREFIX
from recs.stages.publish import MANIFEST

log = logging.getLogger(__name__)

PENDING = ".pending.json"
# the files that name other files: uploaded after everything they name, in this order
COMMIT = ("json/v1/index.json", "json/v1/index.json.gz", "json/v1/changes.json",
          "json/v1/changes.json.gz")
RUN_FILES = (".parquet",)  # what OUT/runs/<run_id>/ keeps besides the manifest
CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class UploadReport:
    """What a publish to a bucket did: object counts and seconds."""

    put: int
    unchanged: int
    deleted: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"objects_put": self.put, "objects_unchanged": self.unchanged,
                "objects_deleted": self.deleted, "seconds": round(self.seconds, 3)}


def remote_manifest(bucket: Bucket, out: BucketURI) -> dict[str, Any] | None:
    """The committed manifest of OUT/latest, or None (first run, or unreadable)."""
    data = bucket.get(out.key(f"latest/{MANIFEST}"))
    try:
        return json.loads(data) if data else None
    except ValueError:
        log.warning("%s/latest/%s is not JSON: every object counts as changed", out, MANIFEST)
        return None


def headers(rel: str, cache_control: str) -> tuple[tuple[str, str], ...]:
    """Content-Type and Cache-Control for `rel`; a .gz twin is the JSON, gzip-encoded, so a
    browser fetching it decodes it as it would a compressed response."""
    if rel.endswith(".gz"):
        inner = CONTENT_TYPES.get(Path(rel[:-3]).suffix, "application/octet-stream")
        return (("Content-Type", inner), ("Content-Encoding", "gzip"),
                ("Cache-Control", cache_control))
    kind = CONTENT_TYPES.get(Path(rel).suffix, "application/octet-stream")
    return (("Content-Type", kind), ("Cache-Control", cache_control))


def begin_upload(bucket: Bucket, out: BucketURI, run_id: str, keys: set[str]) -> frozenset[str]:
    """Before workers upload `keys` (relative to latest/) themselves: name them in
    .pending.json with whatever a killed run left there; returns the latter (to resend)."""
    left = _pending(bucket, out)
    bucket.put(out.key(PENDING), json.dumps({"run_id": run_id,
                                             "keys": sorted(left | keys)}).encode())
    return frozenset(left)


def publish_to_bucket(
    bucket: Bucket, out: BucketURI, run_dir: Path, manifest: dict[str, Any],
    served: dict[str, Any] | None, cache_control: str, guard: Any = None,
    done: Collection[str] = (), sent: int = 0,
) -> UploadReport:
    """Upload the published local run `run_dir` to OUT (see the module docstring).

    manifest: the run's manifest (its "files" map rel -> {bytes, sha256}). served: the
    committed manifest the run started from (`remote_manifest`, read under the lease, so
    still current). guard: called
    before each commit step; raises to stop (a lost lease). done: files the cluster's
    workers already handled (absent from `run_dir`), `sent` of them uploaded. Returns what
    was uploaded.
    """
    started = time.perf_counter()
    check = guard or (lambda: None)
    run_id, files = manifest["run_id"], manifest["files"]
    old = served["files"] if served else {}
    pending = _pending(bucket, out)
    changed = sorted(rel for rel, meta in files.items()
                     if rel not in done and (old.get(rel) != meta or rel in pending))
    body, commit = ([r for r in changed if r not in COMMIT],
                    [r for r in COMMIT if r in changed])
    run_keys = [rel for rel in files if rel.endswith(RUN_FILES)]

    def up(rel: str, key: str) -> Upload:
        return Upload(key, run_dir / rel, headers=headers(rel, cache_control))

    bucket.put_many([up(rel, out.key(f"runs/{run_id}/{rel}")) for rel in run_keys])
    bucket.put(out.key(PENDING), json.dumps(
        {"run_id": run_id, "keys": sorted(pending | set(changed))}).encode())
    log.info("uploading %d changed objects of %d to %s/latest", len(changed), len(files), out)
    bucket.put_many([up(rel, out.key(f"latest/{rel}")) for rel in body])
    check()
    for rel in commit:
        bucket.put(out.key(f"latest/{rel}"), (run_dir / rel).read_bytes(),
                   headers(rel, cache_control))
    check()
    manifest_bytes = (run_dir / MANIFEST).read_bytes()
    bucket.put(out.key(f"latest/{MANIFEST}"), manifest_bytes, headers(MANIFEST, "no-cache"))
    bucket.put(out.key(f"runs/{run_id}/{MANIFEST}"), manifest_bytes,
               headers(MANIFEST, "no-cache"))
    deleted = _delete_unlisted(bucket, out, files)
    bucket.delete_many([out.key(PENDING)])
    put = len(changed) + sent
    report = UploadReport(put, len(files) - put, deleted, time.perf_counter() - started)
    log.info("published %s to %s: %d objects put, %d unchanged, %d deleted in %.2f s",
             run_id, out, report.put, report.unchanged, report.deleted, report.seconds)
    return report


def _pending(bucket: Bucket, out: BucketURI) -> set[str]:
    """Keys a killed upload may have changed without committing a manifest that says so."""
    data = bucket.get(out.key(PENDING))
    if not data:
        return set()
    try:
        keys = set(json.loads(data)["keys"])
    except (ValueError, KeyError, TypeError):
        return set()
    log.info("%d objects of a run that did not finish its upload are uploaded again", len(keys))
    return keys


def _delete_unlisted(bucket: Bucket, out: BucketURI, files: dict[str, Any]) -> int:
    """Delete every key under OUT/latest/ the manifest does not name (removed lists, and
    objects a killed run uploaded that this run does not have). Returns how many."""
    root = out.key("latest") + "/"
    keep = {root + rel for rel in files} | {root + MANIFEST}
    doomed = [info.key for info in bucket.list(root) if info.key not in keep]
    if doomed:
        bucket.delete_many(doomed)
    return len(doomed)


def add_history(bucket: Bucket, out: BucketURI, run_id: str, run_date: date) -> None:
    """OUT/history/run_date=D/recommendations.parquet: a server-side copy of the run's."""
    bucket.copy(out.key(f"runs/{run_id}/recommendations.parquet"),
                out.key(f"history/{HISTORY_PREFIX}{run_date.isoformat()}/"
                        "recommendations.parquet"))


def prune_bucket(
    bucket: Bucket, out: BucketURI, current: str, keep: int, today: date, keep_days: int,
) -> int:
    """Delete all but the newest `keep` runs under OUT/runs/ (never `current`) and history
    partitions older than `keep_days`; returns how many objects went."""
    runs_root = out.key("runs") + "/"
    by_run: dict[str, list[str]] = {}
    for info in bucket.list(runs_root):
        by_run.setdefault(info.key[len(runs_root):].split("/", 1)[0], []).append(info.key)
    complete = sorted(by_run)
    doomed = [key for run in complete[:-keep] if run != current for key in by_run[run]]
    cutoff = today - timedelta(days=keep_days)
    history_root = out.key("history") + "/"
    for info in bucket.list(history_root):
        part = info.key[len(history_root):].split("/", 1)[0]
        try:
            day = date.fromisoformat(part.removeprefix(HISTORY_PREFIX))
        except ValueError:
            continue  # not ours: leave it alone
        if part.startswith(HISTORY_PREFIX) and day < cutoff:
            doomed.append(info.key)
    if doomed:
        bucket.delete_many(doomed)
        log.info("removed %d old run and history objects under %s", len(doomed), out)
    return len(doomed)
