"""Domain errors. Each carries the process exit code a monitor sees; the CLI prints the message."""

from __future__ import annotations


class RecsError(Exception):
    """Anything the job refuses to do, with a one-line message saying what to do."""

    exit_code = 1


class InputError(RecsError):
    """The input data is missing, malformed, or unusable: fix the input and run again."""

    exit_code = 2


class QualityGateError(RecsError):
    """The new lists scored below the bar: nothing was published."""

    exit_code = 3


class RunLockedError(RecsError):
    """Another run holds the output folder's lock."""

    exit_code = 4
