"""A lock on object storage: a lease object written with conditional PUTs.

A bucket has no flock and no rename, so `OUT/.lock` (and `DB/.recs.lock`) is an object holding
who took it and until when. Taking it is a PUT with If-None-Match: * (only one of two racing
runs gets a 200); taking over an expired lease is a PUT with If-Match on the ETag read, so two
runs cannot both take over the same dead one. While held, a thread renews the lease every
quarter of its length; a run that finds it lost (renewal refused) stops before it commits.

A lease is expired when its time is past (the holder's clock: keep clocks in sync, as for any
S3 signature), or at once when it names a process on this host that no longer exists, so a
SIGKILLed run on the same machine does not make the next run wait.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from recs.core.errors import RecsError, RunLockedError
from recs.core.location import Bucket, BucketURI, Location
from recs.stages import publish

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0
POLL_SECONDS = 0.5


@dataclass
class Lease:
    """A held lease; `check()` raises RunLockedError once a renewal was refused."""

    bucket: Bucket
    key: str
    etag: str
    seconds: float
    run_id: str
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def body(self) -> bytes:
        return json.dumps({
            "host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id,
            "expires": time.time() + self.seconds,
        }).encode()

    def renew(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                etag = self.bucket.replace(self.key, self.body(), self.etag)
            except Exception as err:  # a blip: the next renewal may get through in time
                log.warning("could not renew the lease %s: %s", self.where(), err)
                continue
            if etag is None:
                self.lost = True
                log.error("lost the lease %s: another run took it over", self.where())
                return
            self.etag = etag

    def check(self) -> None:
        if self.lost:
            raise RunLockedError(
                f"lost the lock {self.where()} to another run (this run was paused for over "
                f"{self.seconds:g} s); this run published nothing more: run it again")

    def where(self) -> str:
        return f"s3://{self.bucket.uri.bucket}/{self.key}"


@contextmanager
def lease(
    bucket: Bucket, key: str, run_id: str, what: str, wait: float = 0.0,
    seconds: float = LEASE_SECONDS, skip: bool = False,
) -> Iterator[Lease | None]:
    """Hold the lease object `key` for the duration; RunLockedError (naming `what`) when
    another live run holds it for more than `wait` seconds, or None then with `skip`."""
    held = Lease(bucket, key, "", seconds, run_id)
    deadline = time.monotonic() + wait
    while True:
        etag = _take(bucket, key, held)
        if etag is not None:
            break
        if time.monotonic() >= deadline and skip:
            yield None
            return
        if time.monotonic() >= deadline:
            raise RunLockedError(
                f"another recs run is writing to {what} (lease s3://{bucket.uri.bucket}/{key} "
                f"is held: {_holder(bucket, key)}); this run did nothing: let the other one "
                "finish")
        time.sleep(POLL_SECONDS)
    held.etag = etag
    renewer = threading.Thread(target=held.renew, name=f"lease {key}", daemon=True)
    renewer.start()
    try:
        yield held
    finally:
        held._stop.set()
        renewer.join()
        if not held.lost:
            try:
                bucket.delete_many([key])
            except RecsError as err:  # the run's own error matters more; the lease expires
                log.warning("could not release the lease %s (it expires in %g s): %s",
                            held.where(), held.seconds, err)


def _take(bucket: Bucket, key: str, held: Lease) -> str | None:
    """The new ETag when the lease was free or dead and is ours now, else None."""
    etag = bucket.create(key, held.body())
    if etag is not None:
        return etag
    info, data = bucket.head(key), bucket.get(key)
    if info is None or data is None:
        return None  # released between our PUT and our read: try again
    if not _dead(data):
        return None
    log.warning("taking over the lease s3://%s/%s from a run that died: %s",
                bucket.uri.bucket, key, data.decode(errors="replace"))
    return bucket.replace(key, held.body(), info.etag)


def _dead(data: bytes) -> bool:
    try:
        holder = json.loads(data)
        if time.time() > float(holder["expires"]):
            return True
        return holder["host"] == socket.gethostname() and not _alive(int(holder["pid"]))
    except (ValueError, KeyError, TypeError):
        return True  # not a lease we wrote: a torn or foreign object holds nothing


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(bucket: Bucket, key: str) -> str:
    data = bucket.get(key)
    try:
        holder = json.loads(data or b"")
        left = float(holder["expires"]) - time.time()
        return f"run {holder['run_id']} on {holder['host']}, pid {holder['pid']}, {left:.0f} s left"
    except (ValueError, KeyError, TypeError):
        return "by an unknown run"


@contextmanager
def db_lock(db: Location, bucket: Bucket | None, run_id: str,
            wait: float | None = None) -> Iterator[bool]:
    """publish.db_lock for a local database folder; DB/.recs.lock as a lease for a bucket.
    Same semantics: waits up to `wait` s (default DB_LOCK_WAIT); wait=0 yields False when
    another run holds it."""
    if bucket is None or not isinstance(db, BucketURI):
        with publish.db_lock(Path(db), wait) as held:
            yield held
        return
    wait = publish.DB_LOCK_WAIT if wait is None else wait
    with lease(bucket, db.key(".recs.lock"), run_id, f"the LanceDB database {db}", wait=wait,
               skip=wait == 0) as held:
        yield held is not None
