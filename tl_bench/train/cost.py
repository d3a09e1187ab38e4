"""Measured cost of a trial: wall-clock phases and peak memory.

Timers synchronise CUDA before reading the clock, so asynchronous kernels
are charged to the phase that launched them. FLOPs come from
``tl_bench.models.measure_flops``.

Peak memory has one definition on every device: the bytes of the model's
parameters and buffers, plus the largest growth of memory in use above what
was in use when the trial's measurement began. On CUDA the growth is read from
the caching allocator (bytes allocated to tensors); on CPU from the kernel's
high-water mark of the resident set, less file-backed pages (code of libraries
touched for the first time is not memory the trial needs). Whatever a process
allocates once for good on its first trial (kernel libraries, thread pools,
allocator arenas, cuBLAS workspaces) is allocated by a short warm-up before
the first measurement, so the first trial of a process is not charged for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
import sys
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

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


def tensors_mb(tensors: Iterable[torch.Tensor]) -> float:
    """Bytes held by ``tensors`` in MiB (each storage counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total / _MB


def model_mb(model: nn.Module) -> float:
    """The model's parameters and buffers in MiB: the part of peak memory present before training starts."""
    return tensors_mb([*model.parameters(), *model.buffers()])


def _status_bytes(*keys: str) -> dict[str, int] | None:
    # /proc/self/status values are in kB.
    try:
        with open("/proc/self/status") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in keys:
            out[key] = int(value.split()[0]) * 1024
    return out if len(out) == len(keys) else None


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
    # RSS, so the peak of this window is not hidden by an earlier, larger one.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


_warmed: set[str] = set()


def warm_up(device: torch.device, autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext) -> None:
    """Once per process and device: a few training steps of a tiny convolution, attention and
    MLP network, so that what the first trial of a process would allocate for good is already there."""
    key = str(device)
    if key in _warmed:
        return
    _warmed.add(key)
    # Its own random draws: the caller's RNG state is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        _warm_up_steps(device, autocast)
    synchronize(device)


def _warm_up_steps(device: torch.device, autocast: Callable[[], AbstractContextManager[Any]]) -> None:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.GELU(),
                         nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head = nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 10))
    modules = nn.ModuleList([conv, head]).to(device)
    optimizer = torch.optim.AdamW(modules.parameters(), lr=1e-3)
    x = torch.randn(64, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    for _ in range(2):
        with autocast():
            feats = conv(x)
            tokens = feats.view(64, 1, 16).expand(64, 4, 16)
            attended = F.scaled_dot_product_attention(tokens, tokens, tokens).mean(1)
            loss = F.cross_entropy(head(attended).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    with torch.no_grad(), autocast():
        conv.eval()(x)


class PeakMemory:
    """Largest growth of memory in use on a device over a window, in MiB (see the module docstring)."""

    def __init__(self, device: torch.device, autocast: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.device = device
        self.autocast = autocast or contextlib.nullcontext
        self._baseline = 0
        self._resettable = False

    def start(self) -> None:
        warm_up(self.device, self.autocast)
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._baseline = torch.cuda.memory_allocated(self.device)
            return
        _release_free_heap()
        self._resettable = _reset_rss_peak()
        status = _status_bytes("RssAnon")
        if self._resettable and status is not None:
            self._baseline = status["RssAnon"]
        else:
            # Without a resettable peak only growth beyond the process's
            # earlier maximum is visible; that is a lower bound.
            self._resettable = False
            self._baseline = _maxrss_bytes()

    def growth_mb(self) -> float:
        if self.device.type == "cuda":
            synchronize(self.device)
            return max(torch.cuda.max_memory_allocated(self.device) - self._baseline, 0) / _MB
        status = _status_bytes("VmHWM", "RssFile", "RssShmem") if self._resettable else None
        if status is None:
            return max(_maxrss_bytes() - self._baseline, 0) / _MB
        # File-backed pages (library code) only ever grow over a window, so taking them at its
        # end leaves at most the anonymous memory in use at the peak.
        anonymous_peak = status["VmHWM"] - status["RssFile"] - status["RssShmem"]
        return max(anonymous_peak - self._baseline, 0) / _MB


__all__ = ["PeakMemory", "PhaseTimer", "model_mb", "synchronize", "tensors_mb", "warm_up"]
