"""Where the per-range work runs: one small interface (`base.Executor`), two engines.

- `local`: in this process, one range, exactly the plain job (the reference).
- `ray_cluster`: Ray tasks over contiguous ranges; the only module that imports Ray. It is
  imported by name only when an address is given, so without `--ray` nothing imports Ray.
"""

from __future__ import annotations

import importlib

from recs.engines.base import Executor, ranges

__all__ = ["Executor", "open_executor", "ranges"]

MODULES = {"local": "recs.engines.local", "ray": "recs.engines.ray_cluster"}


def open_executor(ray_address: str | None, cpus: int = 1) -> Executor:
    """The local executor without an address; else a Ray executor connected to it (raises
    InputError naming the address when it cannot be reached). cpus: CPUs of a throwaway
    cluster (`local`). Close it (or use it as a context manager) when the run ends."""
    if not ray_address:
        return importlib.import_module(MODULES["local"]).LocalExecutor()
    module = importlib.import_module(MODULES["ray"])  # needs the `ray` extra
    return module.RayExecutor(ray_address, cpus=cpus)
