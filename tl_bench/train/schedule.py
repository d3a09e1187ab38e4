"""The learning-rate schedule a config names, behind one interface the epoch loop calls.

``cosine`` is tl-bench's own per-step schedule (``optim.build_scheduler``: linear
warmup, then half a cosine to zero), kept as the default so that results stay
as they were. ``step`` and ``plateau`` come from timm's ``create_scheduler_v2``
with its linear warmup: ``step`` is stepped per update (decays every
``decay_epochs``), ``plateau`` per epoch on the validation loss (its warmup is
in whole epochs, as timm's plateau scheduler counts them).
"""

from __future__ import annotations

import math
import warnings

import torch
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler

from tl_bench.config import TrialConfig
from tl_bench.train.optim import build_scheduler


class LrSchedule:
    """``step_update()`` after every optimizer step, ``step_epoch(epoch, val_loss)`` after every epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrialConfig, steps_per_epoch: int) -> None:
        self.kind = config.sched
        self.updates = 0
        self._torch = build_scheduler(optimizer, config, steps_per_epoch) if self.kind == "cosine" else None
        self._timm = None if self.kind == "cosine" else _timm_scheduler(optimizer, config, steps_per_epoch)

    def step_update(self) -> None:
        self.updates += 1
        if self._torch is not None:
            self._torch.step()
        elif self._timm is not None:
            self._timm.step_update(num_updates=self.updates)

    def step_epoch(self, epoch: int, val_loss: float) -> None:
        """After validation of 1-based ``epoch``: plateau reads the loss; per-update schedules ignore it."""
        if self._timm is not None:
            self._timm.step(epoch, val_loss)


def _timm_scheduler(optimizer: torch.optim.Optimizer, config: TrialConfig, steps_per_epoch: int) -> Scheduler:
    per_update = config.sched == "step"
    warmup = config.warmup_epochs if per_update else math.ceil(config.warmup_epochs)
    warmup_steps = warmup * steps_per_epoch if per_update else warmup
    base = min(group["lr"] for group in optimizer.param_groups)
    decay_epochs = config.decay_epochs if config.decay_epochs is not None else config.epochs / 3
    with warnings.catch_warnings():
        # timm deprecates its plateau scheduler because it cannot resume from checkpoints; trials never resume
        warnings.filterwarnings("ignore", "PlateauLRScheduler is deprecated", FutureWarning)
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched=config.sched,
            num_epochs=config.epochs,
            decay_epochs=decay_epochs,
            decay_rate=config.decay_rate,
            patience_epochs=config.patience_epochs,
            warmup_epochs=warmup,
            # timm warms every group up from one lr: the lowest group lr over (warmup steps + 1), so no
            # group starts above its own lr (the cosine warmup starts each group at that share)
            warmup_lr=base / (warmup_steps + 1),
            plateau_mode="min",
            step_on_epochs=not per_update,
            updates_per_epoch=steps_per_epoch,
        )
    return scheduler


def build_schedule(optimizer: torch.optim.Optimizer, config: TrialConfig, steps_per_epoch: int) -> LrSchedule:
    return LrSchedule(optimizer, config, steps_per_epoch)


__all__ = ["LrSchedule", "build_schedule"]
