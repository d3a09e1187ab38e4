"""Freeze depth: one definition from timm's stages, the same guarantees on every architecture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tl_bench.models import build_model, count_params, count_stages

BACKBONES = ["test_resnet", "test_convnext", "test_vit", "test_efficientnet"]
IMG = 32
# stage counts from timm's coarse grouping, stem first (ConvNeXt's unused head norm removed)
N_STAGES = {"test_resnet": 5, "test_convnext": 5, "test_vit": 7, "test_efficientnet": 6}
CASES = [(b, d) for b in BACKBONES for d in range(N_STAGES[b] + 1)]


def _model(backbone: str, depth: int | str) -> nn.Module:
    torch.manual_seed(0)
    return build_model(backbone, num_classes=4, img_size=IMG, freeze_depth=depth, neck="gap", head="linear")


def _stage_params(model: nn.Module, frozen: bool) -> dict[str, torch.Tensor]:
    groups = model.backbone.stage_params
    params = dict(model.backbone.model.named_parameters())
    depth = model.backbone.freeze_depth
    chosen = groups[:depth] if frozen else groups[depth:]
    return {n: params[n] for g in chosen for n in g}


def _frozen_norm_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    """Running statistics of every BatchNorm-like module whose parameters are all frozen."""
    out = {}
    for name, module in model.backbone.model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            if all(not p.requires_grad for p in module.parameters()):
                out[f"{name}.mean"] = module.running_mean.clone()
                out[f"{name}.var"] = module.running_var.clone()
    return out


def _train_steps(model: nn.Module, steps: int = 2) -> None:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1, weight_decay=0.1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        model.train()
        x = torch.randn(4, 3, IMG, IMG, generator=gen) * 3 + 1  # far from init statistics
        loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_stage_count_matches_timm_grouping(backbone: str) -> None:
    model = _model(backbone, 0)
    assert model.backbone.n_stages == N_STAGES[backbone] == count_stages(backbone)
    stages = model.backbone.stages
    assert [s.index for s in stages] == list(range(N_STAGES[backbone]))
    assert sum(s.n_params for s in stages) == count_params(model)["params_backbone"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_trainable_count_never_grows_with_depth(backbone: str) -> None:
    counts = [count_params(_model(backbone, d))["params_trainable"] for d in range(N_STAGES[backbone] + 1)]
    assert all(a > b for a, b in zip(counts, counts[1:])), counts  # every stage holds parameters
    assert count_params(_model(backbone, "all"))["params_trainable"] == counts[-1]


@pytest.mark.parametrize(("backbone", "depth"), CASES)
def test_frozen_stages_get_no_gradient_and_do_not_move(backbone: str, depth: int) -> None:
    model = _model(backbone, depth)
    frozen = {n: p.detach().clone() for n, p in _stage_params(model, frozen=True).items()}
    trainable = {n: p.detach().clone() for n, p in _stage_params(model, frozen=False).items()}
    stats = _frozen_norm_stats(model)
    if depth > 0 and backbone in ("test_resnet", "test_efficientnet"):
        assert stats  # these stems hold BatchNorm, so the statistics check below is not vacuous
    assert len(frozen) + len(trainable) == len(list(model.backbone.parameters()))
    _train_steps(model)
    params = dict(model.backbone.model.named_parameters())
    for name, before in frozen.items():
        assert params[name].grad is None, name
        assert torch.equal(params[name], before), name
    for name, before in stats.items():
        module_name, _, kind = name.rpartition(".")
        module = model.backbone.model.get_submodule(module_name)
        after = module.running_mean if kind == "mean" else module.running_var
        assert torch.equal(after, before), name
    # the unfrozen part did train
    assert all(params[n].grad is not None for n in trainable)
    assert not trainable or any(not torch.equal(params[n], v) for n, v in trainable.items())


@pytest.mark.parametrize("backbone", ["test_resnet", "test_efficientnet"])
def test_unfrozen_batchnorm_statistics_do_move(backbone: str) -> None:
    """Control for the test above: the same steps do change statistics of trainable stages."""
    model = _model(backbone, 2)
    bn = [m for m in model.backbone.model.modules() if isinstance(m, nn.BatchNorm2d) and m.weight.requires_grad]
    before = [m.running_mean.clone() for m in bn]
    _train_steps(model)
    assert any(not torch.equal(m.running_mean, b) for m, b in zip(bn, before))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_train_call_keeps_frozen_modules_in_eval_mode(backbone: str) -> None:
    model = _model(backbone, 2)
    model.eval()
    model.train()
    modules = list(model.backbone.model.modules())
    frozen = [m for m in modules if list(m.parameters()) and not any(p.requires_grad for p in m.parameters())]
    assert frozen and all(not m.training for m in frozen)
    trainable_leaves = [m for m in modules if any(p.requires_grad for p in m.parameters(recurse=False))]
    assert trainable_leaves and all(m.training for m in trainable_leaves)
    assert model.neck.training and model.head.training


@pytest.mark.parametrize("backbone", BACKBONES)
def test_all_leaves_only_neck_and_head_trainable(backbone: str) -> None:
    model = _model(backbone, "all")
    counts = count_params(model)
    assert model.backbone.freeze_depth == model.backbone.n_stages
    assert model.backbone.fully_frozen
    assert counts["params_trainable"] == counts["params_neck"] + counts["params_head"]
    assert counts["trainable_fraction"] == pytest.approx(counts["params_trainable"] / counts["params_total"])
    assert all(s.frozen for s in model.backbone.stages)
    for _ in range(2):  # every switch, including those that leave the frozen backbone untouched
        model.train()
        assert not any(m.training for m in model.backbone.modules())
        assert model.neck.training and model.head.training
        model.eval()
        assert not model.head.training and not any(m.training for m in model.backbone.modules())


def test_depth_below_full_is_not_fully_frozen() -> None:
    model = _model("test_resnet", N_STAGES["test_resnet"] - 1)
    assert not model.backbone.fully_frozen
    assert [s.frozen for s in model.backbone.stages] == [True, True, True, True, False]


def test_refreezing_changes_depth_in_place() -> None:
    model = _model("test_vit", "all")
    model.train()
    model.backbone.freeze(3)
    assert model.backbone.freeze_depth == 3
    assert [s.frozen for s in model.backbone.stages] == [True] * 3 + [False] * 4
    assert model.backbone.model.blocks[5].training and not model.backbone.model.blocks[0].training
    model.backbone.freeze(0)
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())  # unfreezing restores the train mode asked for
