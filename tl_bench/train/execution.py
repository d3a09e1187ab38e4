"""How a trial runs on its device: autocast precision, loss scaling, memory format, compilation.

``auto`` reproduces the earlier behaviour exactly: bf16 autocast on CUDA where
the device supports it, fp32 elsewhere, channels_last on CUDA only.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from tl_bench.config import TrialConfig
from tl_bench.errors import TrainingSetupError

Autocast = Callable[[], AbstractContextManager[Any]]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None for fp32)."""
    return _DTYPES.get(precision)


def autocast_for(device: torch.device, precision: str = "auto") -> tuple[Autocast, str]:
    """Mixed precision context and its name (fp32, bf16, fp16) for ``precision`` on ``device``."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise TrainingSetupError(f"precision fp16 needs CUDA, the device is {device.type}", "auto, fp32, bf16")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingSetupError("precision bf16 is not supported by this GPU", "auto, fp32, fp16")
    if precision not in _DTYPES:
        raise TrainingSetupError(f"unknown precision {precision!r}", "auto, fp32, bf16, fp16")
    dtype = _DTYPES[precision]
    return (lambda: torch.autocast(device.type, dtype=dtype)), precision


@dataclass
class Execution:
    """The resolved execution settings of one trial."""

    device: torch.device
    autocast: Autocast
    precision: str  # fp32, bf16 or fp16
    channels_last: bool
    scaler: torch.amp.GradScaler  # enabled for fp16 only (losses scaled so small gradients survive); else a no-op


def resolve_execution(config: TrialConfig, device: torch.device) -> Execution:
    autocast, precision = autocast_for(device, config.precision)
    channels_last = device.type == "cuda" if config.channels_last == "auto" else bool(config.channels_last)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return Execution(device, autocast, precision, channels_last, scaler)


def compile_model(model: nn.Module, batch: torch.Tensor, autocast: Autocast, device: torch.device) -> float:
    """``torch.compile`` ``model`` in place and run its first passes (a training step's forward and
    backward, an evaluation forward) on ``batch``; returns their seconds. Weights, buffers (BatchNorm
    statistics) and gradients are as they were before.

    The batch dimension is compiled as dynamic from the start, so the loop's other batch sizes (the
    last batch, evaluation batches) reuse these graphs instead of recompiling inside the timed phases.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.compile()
    batch = batch.detach().clone()
    torch._dynamo.mark_dynamic(batch, 0)
    _sync(device)
    start = time.perf_counter()
    model.train()
    with autocast():
        out = model(batch)
    out.float().sum().backward()
    model.eval()
    with torch.no_grad(), autocast():
        model(batch)
    _sync(device)
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    model.train(was_training)
    return seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["Autocast", "Execution", "autocast_dtype", "autocast_for", "compile_model", "resolve_execution"]
