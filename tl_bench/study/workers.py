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


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of ``workers`` processes so that together they do not oversubscribe the cores."""
    return max(1, cpu_count() // max(1, workers))


def visible_cuda_devices() -> list[str]:
    """Ids of every CUDA device this process sees (none on a CPU-only machine)."""
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def device_of(index: int, devices: list[str]) -> str | None:
    """The device of worker ``index`` (counted from 1), round-robin; None when there are none."""
    return devices[(index - 1) % len(devices)] if devices else None


def spawn_workers(
    argv: list[str], workers: int, *, devices: list[str] | None = None, tick: Callable[[], None] | None = None
) -> int:
    """Run ``workers`` copies of a ``tl-bench run`` command line; returns the worst exit code.

    Each copy sees one of ``devices`` as its only CUDA device and gets an equal
    share of the CPU cores as torch threads.
    """
    procs = []
    threads = threads_per_worker(workers)
    for index in range(1, workers + 1):
        # Index 0 is the parent that set the studies up; workers count from 1.
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads))
        device = device_of(index, devices or [])
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        cmd = [sys.executable, "-m", "tl_bench", *argv, "--workers", "1", "--worker-index", str(index),
               "--threads", str(threads), "--quiet"]
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


__all__ = ["cpu_count", "device_of", "pid_namespace", "process_alive", "spawn_workers",
           "threads_per_worker", "visible_cuda_devices"]
