"""Inference latency of a model as it would be served: eval mode, its precision and memory format.

For each batch size the forward pass is warmed up, then timed in rounds of a few forwards each
(CUDA synchronised around every forward); a round's median is one measurement, and rounds go on
until their coefficient of variation (standard deviation over mean) is within ``TARGET_CV`` or the
time bound of the batch size is spent. The reported figure is the median of the round medians,
with that spread beside it, so a noisy measurement says so instead of passing for a precise one.

Latency depends on the architecture, the input and how it runs, never on the weights' values, so
``measure_latency`` measures each (architecture key, settings) once per process and returns the
stored figures after that, as ``tl_bench.models.measure_flops`` does for FLOPs: a study's trials on
one architecture pay for one measurement, not one each.
"""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from tl_bench.train.cost import synchronize

DEFAULT_BATCH_SIZES = (1, 32)
TARGET_CV = 0.05  # repeated medians that agree within 5% are a measurement, not noise
MAX_SECONDS = 3.0  # time bound of one measurement, all batch sizes together (warm-up excluded)
MIN_ROUNDS = 3  # the fewest round medians a spread is computed from
MAX_ROUNDS = 15
ROUND_S = 0.01  # forwards per round: as many as take about this long (1 to MAX_GROUP)
MAX_GROUP = 25
WARMUP_RUNS, WARMUP_S = 2, 0.01  # at least this many forwards and this long before timing


@dataclass(frozen=True)
class LatencySettings:
    """How a model is served while it is timed; part of the memo key with the architecture.

    ``dtype`` is the autocast dtype (``torch.bfloat16``, ``torch.float16``; ``None`` runs fp32),
    ``threads`` the torch intra-op threads while timing (``None``: as the process has them).
    Batch sizes are kept sorted and distinct.
    """

    img_size: int
    device: str = "cpu"
    dtype: torch.dtype | None = None
    channels_last: bool = False
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    threads: int | None = None
    in_chans: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", str(torch.device(self.device)))
        sizes = tuple(sorted({int(b) for b in self.batch_sizes}))
        if not sizes or sizes[0] < 1:
            raise ValueError(f"batch sizes must be positive integers, got {self.batch_sizes!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be positive or None, got {self.threads!r}")
        if self.img_size < 1:
            raise ValueError(f"img_size must be positive, got {self.img_size!r}")
        object.__setattr__(self, "batch_sizes", sizes)


@dataclass(frozen=True)
class Latency:
    """One measurement. Per batch size (aligned with ``batch_sizes``): ``batch_ms`` the median
    milliseconds of one forward, ``cv`` the spread of the repeated medians it came from, ``runs``
    the timed forwards (warm-up excluded)."""

    latency_ms: float  # ms per image at batch 1 (at the smallest batch, per image, when 1 is not measured)
    infer_ips: float  # images per second at the largest batch
    batch_sizes: tuple[int, ...]
    batch_ms: tuple[float, ...]
    cv: tuple[float, ...]
    runs: tuple[int, ...]
    device: str
    threads: int  # torch intra-op threads it ran with
    seconds: float = field(default=0.0, compare=False)  # wall time of the measurement, warm-up included

    @classmethod
    def of(cls, settings: LatencySettings, timed: list[tuple[float, float, int]], threads: int,
           seconds: float) -> Latency:
        """The record of ``timed`` (median ms, cv, runs per batch size of ``settings``)."""
        sizes = settings.batch_sizes
        ms = tuple(t[0] for t in timed)
        return cls(
            latency_ms=ms[0] / sizes[0],
            infer_ips=sizes[-1] * 1000.0 / ms[-1] if ms[-1] > 0 else math.inf,
            batch_sizes=sizes,
            batch_ms=ms,
            cv=tuple(t[1] for t in timed),
            runs=tuple(t[2] for t in timed),
            device=settings.device,
            threads=threads,
            seconds=seconds,
        )

    def ms_at(self, batch_size: int) -> float:
        """Median ms of one forward at ``batch_size`` (KeyError when it was not measured)."""
        if batch_size not in self.batch_sizes:
            raise KeyError(f"batch size {batch_size} was not measured; measured: {self.batch_sizes}")
        return self.batch_ms[self.batch_sizes.index(batch_size)]

    @property
    def stable(self) -> bool:
        """Whether every batch size's repeated medians agreed within ``TARGET_CV``."""
        return all(c <= TARGET_CV for c in self.cv)

    def metrics(self) -> dict[str, float]:
        """Flat scalars for a tracker: ``latency_ms``, ``infer_ips``, ``latency_cv`` (the largest
        spread), ``latency_runs`` and ``latency_b{B}_ms`` per batch size."""
        out = {
            "latency_ms": self.latency_ms,
            "infer_ips": self.infer_ips,
            "latency_cv": max(self.cv),
            "latency_runs": float(sum(self.runs)),
        }
        out.update({f"latency_b{b}_ms": ms for b, ms in zip(self.batch_sizes, self.batch_ms)})
        return out


_measured: dict[tuple[Hashable, LatencySettings], Latency] = {}


def measure_latency(model: nn.Module, arch_key: Hashable, settings: LatencySettings, *,
                    max_seconds: float = MAX_SECONDS) -> Latency:
    """``time_inference(model, settings)``, measured once per (``arch_key``, ``settings``) in a process.

    ``arch_key`` is whatever determines the architecture the caller builds models from (backbone,
    adaptation, neck, head and their widths, class count, compilation); the settings (input size,
    device, precision, memory format, threads, batch sizes) are added to it here. A later call with
    the same key returns the stored measurement without running the model.
    """
    key = (arch_key, settings)
    if key not in _measured:
        _measured[key] = time_inference(model, settings, max_seconds=max_seconds)
    return _measured[key]


def stored_latency(arch_key: Hashable, settings: LatencySettings) -> Latency | None:
    """The measurement ``measure_latency`` stored for (``arch_key``, ``settings``), if any."""
    return _measured.get((arch_key, settings))


def seconds_measuring() -> float:
    """Seconds this process has spent measuring (each stored measurement's own ``seconds``)."""
    return sum(latency.seconds for latency in _measured.values())


def forget_latencies() -> None:
    """Drop every stored measurement (a benchmark measuring repeatability, a test)."""
    _measured.clear()


def time_inference(model: nn.Module, settings: LatencySettings, *, max_seconds: float = MAX_SECONDS) -> Latency:
    """Time ``model``'s forward as ``settings`` serve it; no memo (see ``measure_latency``).

    The model runs in eval mode without gradients, under autocast when ``settings.dtype`` is set.
    When its parameters are on another device or in another memory format than ``settings`` ask
    for, a copy is timed and ``model`` is left as it was; otherwise ``model`` itself is timed and
    every module's train/eval mode is restored afterwards, as is torch's thread count. The global
    random state is not touched (inputs come from a generator of their own).
    """
    device = torch.device(settings.device)
    served = _served(model, device, settings.channels_last)
    modes = [(m, m.training) for m in served.modules()]
    threads_before = torch.get_num_threads()
    start = time.perf_counter()
    try:
        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        served.eval()
        budget = max_seconds / len(settings.batch_sizes)
        autocast = (torch.autocast(device.type, dtype=settings.dtype) if settings.dtype is not None
                    else contextlib.nullcontext())
        with torch.no_grad(), autocast:
            timed = [_time_batch(served, _inputs(settings, b, device), device, budget) for b in settings.batch_sizes]
        threads = torch.get_num_threads()
    finally:
        for module, training in modes:
            module.training = training
        torch.set_num_threads(threads_before)
    return Latency.of(settings, timed, threads, time.perf_counter() - start)


def _served(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """``model`` when it already sits on ``device`` in the asked memory format, else a copy that does."""
    tensors = list(model.parameters()) + list(model.buffers())
    on_device = all(_same_device(t.device, device) for t in tensors)
    if on_device and _layout_is(model.parameters(), channels_last):
        return model
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return copy.deepcopy(model).to(device, memory_format=layout)


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are one device when 0 is the current one."""
    return a.type == b.type and _index(a) == _index(b)


def _index(device: torch.device) -> int:
    if device.index is not None:
        return device.index
    return torch.cuda.current_device() if device.type == "cuda" else 0


def _layout_is(params: Iterable[torch.Tensor], channels_last: bool) -> bool:
    """Whether every 4-d weight whose layout the memory format changes is in that layout."""
    for p in params:
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            wanted = torch.channels_last if channels_last else torch.contiguous_format
            if not p.is_contiguous(memory_format=wanted):
                return False
    return True


def _inputs(settings: LatencySettings, batch_size: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, settings.in_chans, settings.img_size, settings.img_size, generator=generator)
    layout = torch.channels_last if settings.channels_last else torch.contiguous_format
    return x.to(device).contiguous(memory_format=layout)


def _time_batch(model: nn.Module, x: torch.Tensor, device: torch.device, budget_s: float) -> tuple[float, float, int]:
    """(median ms of one forward, cv of the round medians, timed forwards) for one batch."""

    def once() -> float:
        synchronize(device)
        t0 = time.perf_counter()
        model(x)
        synchronize(device)
        return time.perf_counter() - t0

    last, warm, began = 0.0, 0, time.perf_counter()
    while warm < WARMUP_RUNS or time.perf_counter() - began < WARMUP_S:
        last, warm = once(), warm + 1
    group = max(1, min(MAX_GROUP, math.ceil(ROUND_S / max(last, 1e-6))))
    medians: list[float] = []
    began = time.perf_counter()
    while True:
        medians.append(statistics.median([once() for _ in range(group)]))
        if len(medians) < MIN_ROUNDS:
            continue
        cv = _cv(medians)
        if cv <= TARGET_CV or len(medians) >= MAX_ROUNDS or time.perf_counter() - began > budget_s:
            return statistics.median(medians) * 1000.0, cv, group * len(medians)


def _cv(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean > 0 else 0.0


__all__ = [
    "DEFAULT_BATCH_SIZES",
    "TARGET_CV",
    "Latency",
    "LatencySettings",
    "forget_latencies",
    "measure_latency",
    "seconds_measuring",
    "stored_latency",
    "time_inference",
]
