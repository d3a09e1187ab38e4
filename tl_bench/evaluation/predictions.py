"""A split's logits and labels in one pass, in the order the batches come: what the report, the
temperature fit and the paired gate read. Same ``(forward, batches)`` contract as
``tl_bench.train.evaluate``, so the trainer's evaluation batches can be passed as they are."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch


@torch.no_grad()
def collect_logits(
    forward: Callable[[Any], torch.Tensor],
    batches: Iterable[tuple[Any, torch.Tensor]],
    *,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (N, K) float32, labels (N,) int64)`` on the CPU, every batch in turn.

    Batches must come in a fixed order (no shuffling) when two models' results are compared image
    by image (``gate.paired_bootstrap_gate``).
    """
    logits, labels = [], []
    for inputs, target in batches:
        with autocast():
            out = forward(inputs)
        logits.append(out.float())
        labels.append(target)
    if not logits:
        raise ValueError("cannot collect logits of an empty split")
    return torch.cat(logits).cpu(), torch.cat(labels).cpu().long()


__all__ = ["collect_logits"]
