"""`python -m mubench.orchestration.reaper DRIVER PID...`: end PIDs, and every process under them,
as soon as process DRIVER is gone.

A driver that starts a local Ray instance (mubench.orchestration.executors.RayExecutor) stops it
with `ray.shutdown()`; a SIGKILLed driver runs no clean-up, and Ray's processes (its control
store, raylet and workers, which run in sessions of their own) lived on for a minute or more,
holding memory and CPUs. So the driver starts this small watcher, in a session of its own, with
the processes the instance started; it polls the driver and, when the driver is gone, kills them
and their descendants. A driver that stops normally kills the watcher itself (`stop`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable

POLL_S = 0.5


def children_of(pid: int) -> set[int]:
    """The pids whose parent is `pid` now (from /proc)."""
    return {child for child, parent in _parents().items() if parent == pid}


def descendants(roots: Iterable[int]) -> set[int]:
    """Every process under `roots` (children, their children, ...), the roots excluded."""
    parents = _parents()
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _parents() -> dict[int, int]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    table[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return table


def start(driver: int, pids: Iterable[int]) -> subprocess.Popen[bytes] | None:
    """The watcher for `pids` on behalf of `driver`; None where there is nothing to watch."""
    pids = sorted(set(pids))
    if not pids or not os.path.isdir("/proc"):
        return None
    return subprocess.Popen([sys.executable, "-m", "mubench.orchestration.reaper", str(driver), *map(str, pids)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(watcher: subprocess.Popen[bytes] | None) -> None:
    """The driver stopped its processes itself: the watcher is not needed."""
    if watcher is not None and watcher.poll() is None:
        watcher.kill()
        watcher.wait()


def main(argv: list[str]) -> int:
    driver, watched = int(argv[0]), {int(pid) for pid in argv[1:]}
    while _alive(driver):  # the set grows while the driver lives: Ray starts agents that later leave their parent
        watched |= descendants(watched)
        time.sleep(POLL_S)
    for pid in sorted(watched | descendants(watched)):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
