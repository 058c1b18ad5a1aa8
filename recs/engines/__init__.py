"""Where the per-range work runs: one small interface (`base.Executor`), two engines.

- `local`: in this process, one range, exactly the plain job (the reference).
- `ray_cluster`: Ray tasks over contiguous ranges; the only module that imports Ray. It is
  imported by name only when an address is given, so without `--ray` nothing imports Ray.

And where objects live when a location is an s3:// URI: `objects` (the only module that imports
obstore), behind `recs.core.location.Bucket`, imported by name only when a URI is given.
"""

from __future__ import annotations

import importlib

from recs.core.errors import InputError
from recs.core.location import Bucket, BucketURI
from recs.engines.base import Executor, ranges

__all__ = ["Executor", "open_bucket", "open_executor", "ranges"]

MODULES = {"local": "recs.engines.local", "ray": "recs.engines.ray_cluster",
           "s3": "recs.engines.objects"}


def open_executor(ray_address: str | None, cpus: int = 1) -> Executor:
    """The local executor without an address; else a Ray executor connected to it (raises
    InputError naming the address when it cannot be reached). cpus: CPUs of a throwaway
    cluster (`local`). Close it (or use it as a context manager) when the run ends."""
    if not ray_address:
        return importlib.import_module(MODULES["local"]).LocalExecutor()
    module = importlib.import_module(MODULES["ray"])  # needs the `ray` extra
    return module.RayExecutor(ray_address, cpus=cpus)


def open_bucket(uri: BucketURI, retry_seconds: float = 60.0) -> Bucket:
    """A client for the bucket of `uri` (needs the `s3` extra: obstore)."""
    try:
        module = importlib.import_module(MODULES["s3"])
    except ModuleNotFoundError as err:
        raise InputError(
            f"{uri}: object storage needs the `s3` extra ({err.name} is not installed): "
            "pip install 'recs[s3]'"
        ) from None
    return module.S3Bucket(uri, retry_seconds)
