"""The plain path: everything in this process, the whole catalog as one range (the
reference every other engine must match byte for byte)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from recs.engines.base import Range, ShardProgress

R = TypeVar("R")


class LocalExecutor:
    name = "local"

    def cpus(self) -> int:
        return 1

    def ranges(self, total: int) -> list[Range]:
        return [(0, total)]

    def share(self, inputs: Any) -> Any:
        return inputs

    def map(
        self, fn: Callable[[Any, int, int], R], shared: Any, parts: Sequence[Range],
        progress: ShardProgress | None = None,
    ) -> list[R]:
        out = []
        for i, (start, stop) in enumerate(parts, 1):
            out.append(fn(shared, start, stop))
            if progress:
                progress(i, len(parts))
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
