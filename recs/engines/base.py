"""The engine interface: map a function over contiguous ranges of query movies.

    shared = executor.share(inputs)        # read-only inputs, shipped once per run
    parts = executor.map(fn, shared, executor.ranges(total))   # fn(inputs, start, stop)

Results come back in the order of the ranges; they are independent, so a range may run
anywhere, twice (a retried task), or in any order. `progress(done, total)` after each range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

R = TypeVar("R")
Range = tuple[int, int]
ShardProgress = Callable[[int, int], None]

# a range below this many query movies costs more in task overhead than it saves
MIN_RANGE = 256
RANGES_PER_CPU = 4  # a few per CPU: a slow or retried range does not hold up the end


def ranges(total: int, cpus: int, min_range: int = MIN_RANGE) -> list[Range]:
    """Contiguous [start, stop) ranges covering 0..total: about RANGES_PER_CPU per CPU, none
    shorter than min_range (unless total is), sizes differing by at most one."""
    if total <= 0:
        return []
    n = max(1, min(cpus * RANGES_PER_CPU, total // max(min_range, 1)))
    bounds = [total * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class Executor(Protocol):
    name: str

    def cpus(self) -> int:
        """CPUs the engine can use at once (shard sizing)."""
        ...

    def ranges(self, total: int) -> list[Range]:
        """How this engine splits `total` query movies."""
        ...

    def share(self, inputs: Any) -> Any:
        """A handle to read-only inputs, shipped once (the object itself when local)."""
        ...

    def map(
        self, fn: Callable[[Any, int, int], R], shared: Any, parts: Sequence[Range],
        progress: ShardProgress | None = None,
    ) -> list[R]:
        """[fn(inputs, start, stop) for each range], in the order of `parts`."""
        ...

    def close(self) -> None:
        """Release what the engine started for this run (a throwaway cluster)."""
        ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...
