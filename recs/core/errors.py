"""Domain errors. Each carries the process exit code a monitor sees; the CLI prints the message."""

from __future__ import annotations


class RecsError(Exception):
    """Anything the job refuses to do, with a one-line message saying what to do."""

    exit_code = 1


class InputError(RecsError):
    """The input data is missing, malformed, or unusable: fix the input and run again."""

    exit_code = 2


class QualityGateError(RecsError):
    """The new lists scored below the bar: nothing was published. `figures`: the gate's
    measurements (for the metrics file), when known."""

    exit_code = 3

    def __init__(self, message: str, figures: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.figures = figures


class RunLockedError(RecsError):
    """Another run holds the output folder's lock."""

    exit_code = 4


class EnvironmentFaultError(RecsError):
    """The machine, not the input: an output or database folder is full, over quota, or not
    writable. Nothing was published; free space or fix the folder, then run the same job again."""

    exit_code = 5


class ClusterError(RecsError):
    """The cluster lost work it could not redo (a node or the object store gone): nothing was
    published. Run again once the cluster is healthy."""

    exit_code = 6
