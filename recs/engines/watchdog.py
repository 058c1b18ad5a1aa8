"""Ends every process a driver started once the driver is gone, however it went.

    python -m recs.engines.watchdog DRIVER_PID      # stdin: a pipe the driver holds open

It says `watching` on stdout once it has noted the driver's existing children.

The Ray engine starts this just before a throwaway (`--ray local`) cluster. Ray ties the
cluster's direct children (GCS, raylet, monitors) to the driver with PR_SET_PDEATHSIG, but not
the raylet's own children: with the driver SIGKILLed, its dashboard and runtime-env agents
lived on for 60-90 s here. So the watchdog notes the driver's descendants (pid and start time)
every POLL_S seconds while the driver lives, leaving out those that were already there when it
started (a notebook's own subprocesses are not the cluster's). When its stdin reaches end of
file (the driver closed it, or the kernel did as the driver died) it SIGKILLs those of them
still alive, then exits.

It runs in a process group of its own (a Ctrl-C or a `kill -- -PGID` aimed at the job does
not end it before it has done its work), imports nothing beyond the standard library, and
needs Linux's /proc; without /proc it only waits for the driver and ends nothing.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger("recs.watchdog")

PROC = Path("/proc")
POLL_S = 0.2  # how stale the list of descendants may be when the driver dies
GONE_WAIT_S = 5.0  # for SIGKILLed processes to leave the process table

Seen = dict[int, int]  # pid -> start time in clock ticks after boot (a reused pid differs)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state letter, start time) of a process, or None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name before ")" may hold spaces
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int, root_start: int, skip: int) -> Seen:
    """Every live descendant of `root` (if `root` is still the process that started at
    `root_start`), except `skip` and its own descendants."""
    if not PROC.is_dir() or (_stat(root) or (0, "", -1))[2] != root_start:
        return {}
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))):
            children.setdefault(found[0], []).append((int(entry.name), found[2]))
    out: Seen = {}
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            if pid != skip and pid not in out:
                out[pid] = start
                todo.append(pid)
    return out


def alive(seen: Seen) -> Seen:
    """The processes of `seen` still running as themselves (zombies count as gone)."""
    out: Seen = {}
    for pid, start in seen.items():
        found = _stat(pid)
        if found and found[2] == start and found[1] != "Z":
            out[pid] = start
    return out


def end(seen: Seen) -> Seen:
    """SIGKILL what is left of `seen` (no grace: the driver that owned it is gone and its
    throwaway cluster holds nothing worth flushing); the processes that would not go."""
    for pid in alive(seen):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + GONE_WAIT_S
    while (left := alive(seen)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def watch(driver: int, pipe: int) -> Seen:
    """Note `driver`'s descendants until `pipe` reaches end of file; all seen that were not
    there at the start."""
    me, driver_start = os.getpid(), (_stat(driver) or (0, "", -1))[2]
    before = descendants(driver, driver_start, me)
    sys.stdout.write("watching\n")  # the driver waits for this line before starting anything
    sys.stdout.flush()
    seen: Seen = {}
    while True:
        seen.update(descendants(driver, driver_start, me))
        ready, _, _ = select.select([pipe], [], [], POLL_S)
        if ready and not os.read(pipe, 4096):
            seen.update(descendants(driver, driver_start, me))  # a closing driver still runs
            return {pid: t for pid, t in seen.items() if before.get(pid) != t}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    for sig in (signal.SIGINT, signal.SIGHUP):  # only the pipe ends the watch
        signal.signal(sig, signal.SIG_IGN)
    driver = int(argv[1])
    seen = watch(driver, sys.stdin.fileno())
    left = alive(seen)
    if left:
        log.info("ending %d processes left by driver %d: %s", len(left), driver,
                 " ".join(map(str, sorted(left))))
    stuck = end(left)
    if stuck:
        log.error("processes %s of driver %d did not end", sorted(stuck), driver)
    return 1 if stuck else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
