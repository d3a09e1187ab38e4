"""Frozen BatchNorm statistics re-estimated on the target's training images (AdaBN).

A frozen BatchNorm layer normalises with the running statistics its weights
brought. Random weights bring mean 0 and variance 1, which match no real
activation: a frozen random backbone then outputs nearly constant features,
and any comparison against it measures that collapse rather than what
pretraining gives. One label-free pass over the training images (no
augmentation, in a fixed order and batch, so every trial of the same backbone
and data gets the same statistics) gives each frozen layer its population
statistics, as ``torch.optim.swa_utils.update_bn`` does for a whole model;
only the frozen layers are touched, everything else stays in eval mode.
The pass runs before training and before the feature cache reads the
backbone, so cached and uncached trials see the same frozen function.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable

import torch

from tl_bench.models import TransferModel
from tl_bench.train.cost import PhaseTimer

PASS_BATCH = 256  # fixed: the statistics must not depend on the batch size of the trial that computes them


@dataclass(frozen=True)
class BnPass:
    """What re-estimating the frozen BatchNorm statistics did and cost."""

    layers: int = 0  # frozen BatchNorm layers whose statistics were re-estimated
    seconds: float = 0.0  # wall clock of the pass over the training split
    images: int = 0  # training images the pass read


@torch.no_grad()
def recalibrate_frozen_bn(
    model: TransferModel,
    batches: Iterable[tuple[torch.Tensor, Any]],
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> BnPass:
    """Re-estimate the running statistics of the backbone's frozen BatchNorm layers on ``batches``
    (the training split, unaugmented, in batches of ``PASS_BATCH``).

    Each layer's statistics become the average over the pass's batches (``momentum=None``); the
    model leaves in the mode it came in, its frozen layers in eval mode as always.
    """
    layers = model.backbone.frozen_batchnorms()
    if not layers:
        return BnPass()
    was_training = model.training
    model.eval()
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the pass
        layer.train()
    timer, seen = PhaseTimer(device), 0
    try:
        with timer("pass"):
            for x, _ in batches:
                with autocast():
                    model.extract_feat(x)
                seen += len(x)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
            layer.eval()
        model.train(was_training)
    return BnPass(layers=len(layers), seconds=timer.get("pass"), images=seen)


__all__ = ["BnPass", "PASS_BATCH", "recalibrate_frozen_bn"]
