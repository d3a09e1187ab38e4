"""Measured cost of a trial: wall-clock phases and peak memory.

Timers synchronise CUDA before reading the clock, so asynchronous kernels
are charged to the phase that launched them. Peak memory is CUDA peak
allocated on GPU; on CPU it is the growth of the resident set over the
trial, read from the kernel's high-water mark after resetting it. FLOPs
come from ``tl_bench.models.measure_flops``.
"""

from __future__ import annotations

import ctypes
import resource
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import torch

_MB = 2**20


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer:
    """Accumulates wall-clock seconds per named phase ("train", "eval")."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def get(self, phase: str) -> float:
        return self.seconds.get(phase, 0.0)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize()
    except OSError:
        return None


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes, Linux kilobytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _release_free_heap() -> None:
    # glibc keeps freed small blocks mapped; a later trial reusing them would
    # show no growth. Handing them back first makes the baseline honest.
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _reset_rss_peak() -> bool:
    # Linux >= 4.0: writing 5 resets VmHWM (and so ru_maxrss) to the current
    # RSS, so the peak of this trial is not hidden by an earlier, larger one.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of one trial in MiB: CUDA peak allocated, or CPU peak RSS growth."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._baseline = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        _release_free_heap()
        current = _rss_bytes()
        if _reset_rss_peak() and current is not None:
            self._baseline = current
        else:
            # Without a resettable peak only growth beyond the process's
            # earlier maximum is visible; that is a lower bound.
            self._baseline = _maxrss_bytes()

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / _MB
        return max(_maxrss_bytes() - self._baseline, 0) / _MB


__all__ = ["PhaseTimer", "PeakMemory", "synchronize"]
