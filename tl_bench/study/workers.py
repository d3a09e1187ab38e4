"""Worker processes on this machine, and how a worker is told apart from the others.

``tl-bench run --workers N`` starts N copies of the same command line against
the same storages; each records its host, pid and pid namespace on the trials
it runs, so that ``reconcile`` can tell a dead worker from a live one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def pid_namespace() -> str:
    """The kernel boot and pid namespace this process lives in.

    Two containers (or cloned machines) may share a host name; a pid only says
    whether a worker is alive when it was seen from the same namespace.
    """
    parts = []
    for read in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                 lambda: str(os.stat("/proc/self/ns/pid").st_ino)):
        try:
            parts.append(read())
        except OSError:
            pass
    return ":".join(parts)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this namespace still runs (this process never counts as a worker)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn_workers(argv: list[str], workers: int, *, tick: Callable[[], None] | None = None) -> int:
    """Run ``workers`` copies of a ``tl-bench run`` command line; returns the worst exit code."""
    procs = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for index in range(workers):
        # Index 0 is the parent that set the studies up; workers count from 1.
        cmd = [sys.executable, "-m", "tl_bench", *argv, "--workers", "1", "--worker-index", str(index + 1), "--quiet"]
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        while any(p.poll() is None for p in procs):
            if tick is not None:
                tick()
            time.sleep(1.0)
        codes = [p.returncode for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    return max(codes, key=abs)


__all__ = ["pid_namespace", "process_alive", "spawn_workers"]
