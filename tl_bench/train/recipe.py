"""A trial's training recipe, built once from its config: optimizer, lr schedule, mixing and loss,
weight EMA and loss scaling. The epoch loop only calls what this holds.

Model EMA is timm's ``ModelEmaV3`` with its decay warm-up (``use_warmup=True``): after optimizer
step ``t`` (1-based, as ``update(model, step=t)`` is given it) the average decays by
``min(ema_decay, 1 - t**(-2/3))`` (0 at the first step: the average starts from the weights after
one update), so a slow decay such as 0.9999 on a run of a few hundred steps still follows the
training instead of staying near the initial weights. When it is on, validation, the choice of
epoch and the test read the averaged weights, and the trainer leaves them in the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.utils import ModelEmaV3
from torch import nn

from tl_bench.config import TrialConfig
from tl_bench.train.execution import Execution
from tl_bench.train.mixing import BatchMixer
from tl_bench.train.optim import build_optimizer
from tl_bench.train.schedule import LrSchedule


@dataclass
class Recipe:
    optimizer: torch.optim.Optimizer
    schedule: LrSchedule
    mixer: BatchMixer  # also holds the training loss
    ema: ModelEmaV3 | None
    scaler: torch.amp.GradScaler  # a no-op unless fp16
    grad_clip: float | None

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The weights validation and test read: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else model


def build_recipe(
    config: TrialConfig, model: nn.Module, backbone: nn.Module, execution: Execution, *,
    steps_per_epoch: int, num_classes: int,
) -> Recipe:
    optimizer = build_optimizer(model, backbone, config)
    ema = None
    if config.ema_decay is not None:
        # use_warmup: without it a slow decay would test weights a short run has hardly moved.
        ema = ModelEmaV3(model, decay=config.ema_decay, use_warmup=True)
        ema.module.eval()
    return Recipe(
        optimizer=optimizer,
        schedule=LrSchedule(optimizer, config, steps_per_epoch),
        mixer=BatchMixer(config, num_classes),
        ema=ema,
        scaler=execution.scaler,
        grad_clip=config.grad_clip,
    )


__all__ = ["Recipe", "build_recipe"]
