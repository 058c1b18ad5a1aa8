"""The Ray engine: contiguous ranges of query movies as Ray tasks. The only module that
imports Ray; `recs.engines.open_executor` imports it by name only when an address is given.

- Read-only inputs go into the object store once per run (`share` = `ray.put`); each task
  gets the reference and reads the arrays zero-copy (read-only numpy views of shared memory).
- Tasks are retried (`max_retries`) when their worker or node dies: every range is a pure
  function of the shared inputs, so a re-run gives the same bytes.
- Ranges adapt to the cluster: about `RANGES_PER_CPU` per CPU, never below `MIN_RANGE`.
- Address `local` starts a throwaway cluster for the run and stops it (only it) at the end;
  any other address is connected to and left running.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ray
from ray import exceptions as ray_errors
from ray._private import services

from recs.core.errors import ClusterError, InputError, RecsError
from recs.engines.base import Range, ShardProgress, ranges

log = logging.getLogger(__name__)

R = TypeVar("R")
MAX_RETRIES = 3  # per task, for a dead worker or node (not for an error in our code)
LOCAL_STORE_BYTES = 300 * 1024**2  # object store of a `local` throwaway cluster
CONNECT_TIMEOUT_S = 5.0


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
        if ray.is_initialized():  # a caller's own connection (a notebook): used, not closed
            self._connected_here = False
            return
        common = {"logging_level": logging.WARNING, "configure_logging": False,
                  "namespace": "recs"}
        if self._owned:
            ray.init(address="local", num_cpus=cpus, object_store_memory=LOCAL_STORE_BYTES,
                     include_dashboard=False, **common)
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
        return ray.put(inputs)

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
        """Disconnect; for `local`, this also stops the throwaway cluster (only it)."""
        if self._connected_here and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
