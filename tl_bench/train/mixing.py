"""Mixup and CutMix through timm's ``Mixup``, with label smoothing folded in as timm does.

With mixing on, targets become soft (N, K) distributions and the loss is timm's
``SoftTargetCrossEntropy``; without it, hard labels and ``CrossEntropyLoss``
with the configured label smoothing, as before. Mixing pairs each image with
the batch's mirror image (timm's ``batch`` mode), which needs an even batch:
an odd batch leaves out its last image. timm draws from NumPy's global
generator, which ``seed`` sets.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from tl_bench.config import TrialConfig
from tl_bench.errors import TrainingSetupError


class BatchMixer:
    """``(images, labels) -> (images, targets)`` for training, and the loss those targets take."""

    def __init__(self, config: TrialConfig, num_classes: int) -> None:
        self.mixup: Mixup | None = None
        if config.mixes:
            if config.batch_size < 2:
                raise TrainingSetupError(
                    f"mixup and cutmix pair images, batch_size {config.batch_size} has no pairs", "batch_size >= 2"
                )
            self.mixup = Mixup(
                mixup_alpha=config.mixup,
                cutmix_alpha=config.cutmix,
                prob=config.mixup_prob,
                label_smoothing=config.label_smoothing,
                num_classes=num_classes,
            )
            self.criterion: nn.Module = SoftTargetCrossEntropy()
        else:
            self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    @property
    def active(self) -> bool:
        return self.mixup is not None

    def seed(self, seed: int) -> None:
        if self.mixup is not None:
            np.random.seed(seed)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mixup is None:
            return images, labels
        if len(labels) % 2:
            images, labels = images[:-1], labels[:-1]
        return self.mixup(images, labels)


__all__ = ["BatchMixer"]
