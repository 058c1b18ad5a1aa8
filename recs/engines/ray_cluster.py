"""The Ray engine: contiguous ranges of query movies as Ray tasks. The only module that
imports Ray; `recs.engines.open_executor` imports it by name only when an address is given.

- Read-only inputs go into the object store once per run (`share` = `ray.put`); each task
  gets the reference and reads the arrays zero-copy (read-only numpy views of shared memory).
- Tasks are retried (`max_retries`) when their worker or node dies: every range is a pure
  function of the shared inputs, so a re-run gives the same bytes.
- Ranges adapt to the cluster: about `RANGES_PER_CPU` per CPU, never below `MIN_RANGE`.
- Address `local` starts a throwaway cluster for the run and stops it (only it) at the end;
  any other address is connected to and left running. A watchdog process
  (`recs.engines.watchdog`) ends what is left of the throwaway cluster when the driver
  dies without stopping it (SIGKILL, the OOM killer).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ray
import ray.experimental
from ray import exceptions as ray_errors
from ray._private import services

from recs.core.errors import ClusterError, InputError, RecsError
from recs.engines.base import Range, ShardProgress, ranges

log = logging.getLogger(__name__)

R = TypeVar("R")
MAX_RETRIES = 3  # per task, for a dead worker or node (not for an error in our code)
LOCAL_STORE_BYTES = 300 * 1024**2  # object store of a `local` throwaway cluster
CONNECT_TIMEOUT_S = 5.0
WATCHDOG = "recs.engines.watchdog"
WATCHDOG_EXIT_S = 30.0  # it SIGKILLs leftovers and waits up to 5 s for them to go


@ray.remote(num_cpus=1, max_retries=MAX_RETRIES)
def _run_range(fn: Callable[[Any, int, int], R], shared: Any, start: int, stop: int) -> R:
    return fn(shared, start, stop)  # `shared` arrives resolved: zero-copy from the store


def check_reachable(address: str) -> str:
    """HOST:PORT the address leads to, after a TCP connect; InputError naming the address
    otherwise (before ray.init, which waits minutes for a cluster that is not there)."""
    try:
        target = address.removeprefix("ray://")
        if target == "auto":
            found = services.get_ray_address_from_environment("auto", None)
            target = found.removeprefix("ray://")
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InputError(
                f"--ray {address!r}: expected auto, local, HOST:PORT or ray://HOST:PORT"
            )
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except RecsError:
        raise
    except Exception as err:  # ConnectionError (no cluster for auto), OSError, gaierror
        raise InputError(f"cannot reach the Ray cluster at {address!r}: {_reason(err)}")\
            from None
    return target


def _reason(err: Exception) -> str:
    """The first line of an error's message, or its type when it has none."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def start_watchdog() -> subprocess.Popen:
    """The watchdog of this process (see `recs.engines.watchdog`): it ends what this process
    starts from now on once the pipe to it closes, by `stop_watchdog` or by our death."""
    watchdog = subprocess.Popen(
        [sys.executable, "-m", WATCHDOG, str(os.getpid())], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, process_group=0,  # a Ctrl-C at the job must not end it
    )
    if not watchdog.stdout.readline():  # else it has noted what ran before it, not ours
        log.warning("the Ray watchdog (pid %d) did not start: a driver killed now would leave "
                    "the throwaway cluster's agents running", watchdog.pid)
    watchdog.stdout.close()
    return watchdog


def stop_watchdog(watchdog: subprocess.Popen) -> None:
    """Close its pipe and wait while it ends what the run left (nothing, normally)."""
    watchdog.stdin.close()
    try:
        watchdog.wait(WATCHDOG_EXIT_S)
    except subprocess.TimeoutExpired:
        log.warning("the Ray watchdog (pid %d) did not finish within %.0f s", watchdog.pid,
                    WATCHDOG_EXIT_S)


def _cancel(refs: list) -> None:
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # already finished or its node gone: nothing left to stop
            pass


class RayExecutor:
    name = "ray"

    def __init__(self, address: str, cpus: int = 1) -> None:
        self.address = address
        self._owned = address == "local"
        self._watchdog: subprocess.Popen | None = None
        if ray.is_initialized():  # a caller's own connection (a notebook): used, not closed
            self._connected_here = False
            return
        common = {"logging_level": logging.WARNING, "configure_logging": False,
                  "namespace": "recs"}
        if self._owned:
            self._watchdog = start_watchdog()
            try:
                ray.init(address="local", num_cpus=cpus, object_store_memory=LOCAL_STORE_BYTES,
                         include_dashboard=False, **common)
            except BaseException:
                stop_watchdog(self._watchdog)
                raise
        else:
            check_reachable(address)
            try:
                ray.init(address=address, **common)
            except Exception as err:
                raise InputError(
                    f"cannot connect to the Ray cluster at {address!r}: {_reason(err)}"
                ) from None
        self._connected_here = True
        log.info("ray: %s, %d CPUs on %d nodes", address, self.cpus(),
                 sum(1 for n in ray.nodes() if n.get("Alive")))

    def cpus(self) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def ranges(self, total: int) -> list[Range]:
        return ranges(total, self.cpus())

    def share(self, inputs: Any) -> Any:
        ref = ray.put(inputs)
        try:
            where = ray.experimental.get_object_locations([ref], timeout_ms=5000).get(ref, {})
        except Exception:  # Ray Client cannot look locations up: the size is only information
            where = {}
        # what every node holds one copy of for the run (bench/ray_bench.py reads this line)
        log.info("ray: shared %d bytes in the object store", where.get("object_size") or 0)
        return ref

    def map(
        self, fn: Callable[[Any, int, int], R], shared: Any, parts: Sequence[Range],
        progress: ShardProgress | None = None,
    ) -> list[R]:
        refs = [_run_range.remote(fn, shared, start, stop) for start, stop in parts]
        where = {ref: i for i, ref in enumerate(refs)}
        out: list[Any] = [None] * len(refs)
        pending, done = list(refs), 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    out[where[ref]] = ray.get(ref)
                    done += 1
                    if progress:
                        progress(done, len(refs))
        except ray_errors.RayTaskError as err:  # our code raised in a task: the same error
            _cancel(pending)
            cause = getattr(err, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except ray_errors.RayError as err:  # a worker, node or object lost beyond retries
            _cancel(pending)
            first = (str(err).strip().splitlines() or [""])[0][:200]
            raise ClusterError(
                f"the Ray cluster at {self.address!r} lost shard work beyond {MAX_RETRIES} "
                f"retries ({type(err).__name__}: {first}); nothing was published"
            ) from None
        return out

    def close(self) -> None:
        """Disconnect; for `local`, this also stops the throwaway cluster (only it) and
        returns once none of its processes is left."""
        if self._connected_here and ray.is_initialized():
            ray.shutdown()
        if self._watchdog is not None:
            stop_watchdog(self._watchdog)
            self._watchdog = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
