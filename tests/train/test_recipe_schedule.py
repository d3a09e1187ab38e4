"""The lr schedules a config names: today's cosine unchanged, timm's step and plateau with warmup."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tl_bench.config import TrialConfig
from tl_bench.train.optim import build_optimizer, cosine_with_warmup
from tl_bench.train.schedule import LrSchedule


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)


def _run(config: TrialConfig, steps_per_epoch: int, val_losses: list[float] | None = None) -> list[float]:
    """The head lr of every step, each read before its optimizer step, as the epoch loop does."""
    model = Tiny()
    optimizer = build_optimizer(model, model.backbone, config)
    schedule = LrSchedule(optimizer, config, steps_per_epoch)
    head = next(g for g in optimizer.param_groups if g["name"] == "head")
    lrs = []
    for epoch in range(1, config.epochs + 1):
        for _ in range(steps_per_epoch):
            lrs.append(head["lr"])
            optimizer.step()
            schedule.step_update()
        schedule.step_epoch(epoch, (val_losses or [1.0] * config.epochs)[epoch - 1])
    return lrs


def _config(**changes: object) -> TrialConfig:
    return TrialConfig(dataset="digits", backbone="test_resnet", lr=0.1, backbone_lr_scale=0.5).replace(**changes)


def test_cosine_default_is_the_earlier_per_step_schedule() -> None:
    lrs = _run(_config(epochs=3, warmup_epochs=1.0), steps_per_epoch=4)
    factor = cosine_with_warmup(total_steps=12, warmup_steps=4)
    assert lrs == pytest.approx([0.1 * factor(s) for s in range(12)])


def test_step_decays_by_rate_every_decay_epochs_after_warmup() -> None:
    lrs = _run(_config(sched="step", epochs=6, decay_epochs=2, decay_rate=0.5, warmup_epochs=1.0), steps_per_epoch=4)
    assert lrs[0] == pytest.approx(0.05 / 5)  # timm warms every group up from one lr: the lowest base / (steps + 1)
    assert lrs[:4] == sorted(lrs[:4]) and lrs[3] < 0.1
    assert lrs[4:8] == pytest.approx([0.1] * 4)
    assert lrs[8:16] == pytest.approx([0.05] * 8)
    assert lrs[16:] == pytest.approx([0.025] * 8)


def test_step_without_decay_epochs_decays_at_each_third() -> None:
    lrs = _run(_config(sched="step", epochs=3, decay_rate=0.1), steps_per_epoch=2)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_plateau_decays_when_the_validation_loss_stops_falling() -> None:
    losses = [1.0, 0.8, 0.9, 0.95, 0.97, 0.99]
    lrs = _run(_config(sched="plateau", epochs=6, decay_rate=0.5, patience_epochs=1), 2, losses)
    per_epoch = lrs[::2]
    assert per_epoch[:4] == pytest.approx([0.1] * 4)  # epochs 3 and 4 do not improve on 0.8
    assert per_epoch[4] == pytest.approx(0.05)  # decayed after the second epoch without improvement


def test_backbone_keeps_its_scale_under_timm_schedules() -> None:
    model = Tiny()
    config = _config(sched="step", epochs=2, decay_epochs=1)
    optimizer = build_optimizer(model, model.backbone, config)
    schedule = LrSchedule(optimizer, config, 3)
    for _ in range(3):
        optimizer.step()
        schedule.step_update()
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["backbone"] == pytest.approx(0.5 * lrs["head"]) and lrs["head"] == pytest.approx(0.01)
    assert isinstance(optimizer, torch.optim.AdamW)
