from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tl_bench.config import TrialConfig
from tl_bench.errors import TrainingSetupError
from tl_bench.train.optim import build_optimizer, build_scheduler, cosine_with_warmup


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)


def config(**changes: object) -> TrialConfig:
    return TrialConfig(dataset="digits", backbone="test_resnet", lr=0.01, backbone_lr_scale=0.1, weight_decay=0.05).replace(
        **changes
    )


def test_groups_scale_backbone_lr_and_skip_decay_on_1d_params() -> None:
    model = Tiny()
    opt = build_optimizer(model, model.backbone, config())
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["backbone"]["lr"] == pytest.approx(0.001)
    assert by_name["head"]["lr"] == pytest.approx(0.01)
    assert by_name["backbone"]["weight_decay"] == 0.05
    assert by_name["backbone_no_decay"]["weight_decay"] == 0.0
    assert {id(p) for p in by_name["head_no_decay"]["params"]} == {id(model.head.bias)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_frozen_parameters_are_left_out_and_sgd_uses_momentum() -> None:
    model = Tiny()
    model.backbone.requires_grad_(False)
    opt = build_optimizer(model, model.backbone, config(optimizer="sgd", momentum=0.8))
    assert isinstance(opt, torch.optim.SGD)
    assert {g["name"] for g in opt.param_groups} == {"head", "head_no_decay"}
    assert all(g["momentum"] == 0.8 for g in opt.param_groups)


def test_no_trainable_parameters_is_refused() -> None:
    model = Tiny().requires_grad_(False)
    with pytest.raises(TrainingSetupError, match="no trainable parameters"):
        build_optimizer(model, model.backbone, config())


def test_cosine_with_warmup_shape() -> None:
    f = cosine_with_warmup(total_steps=20, warmup_steps=4)
    assert [f(s) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert f(4) == pytest.approx(1.0)
    decay = [f(s) for s in range(4, 20)]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert f(19) == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert f(19) > 0


def test_scheduler_steps_per_batch_over_all_epochs() -> None:
    model = Tiny()
    cfg = config(epochs=3, warmup_epochs=1.0)
    opt = build_optimizer(model, model.backbone, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5)
    head = next(g for g in opt.param_groups if g["name"] == "head")
    lrs = []
    for _ in range(15):
        lrs.append(head["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01 / 6)
    assert max(lrs) == pytest.approx(0.01)
    assert lrs.index(max(lrs)) == 5
    assert lrs[-1] < 0.001


@pytest.mark.parametrize(("weights", "scale"), [("scratch", 1.0), ("pretrained", 0.1), ("local:shapes", 0.1)])
def test_a_scratch_backbone_learns_at_the_full_rate_unless_told_otherwise(weights: str, scale: float) -> None:
    model = Tiny()
    unset = TrialConfig(dataset="digits", backbone="test_resnet", lr=0.01, weights=weights)
    by_name = {g["name"]: g for g in build_optimizer(model, model.backbone, unset).param_groups}
    assert by_name["backbone"]["lr"] == pytest.approx(0.01 * scale)
    # A scale written out is kept whatever the weights, and one left to the default follows new weights.
    assert unset.replace(backbone_lr_scale=0.5).backbone_lr_scale == 0.5
    assert unset.replace(weights="scratch").backbone_lr_scale == 1.0
    assert unset.replace(weights="pretrained").backbone_lr_scale == 0.1
