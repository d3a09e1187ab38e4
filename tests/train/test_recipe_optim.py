"""Layer-wise lr decay, drop path and timm's optimizers reach the model and the optimizer."""

from __future__ import annotations

import pytest
import torch
from typing import get_args

from tl_bench.config import Optimizer, TrialConfig
from tl_bench.models import build_model_for
from tl_bench.train.optim import build_optimizer


def _config(backbone: str = "test_vit", **changes: object) -> TrialConfig:
    return TrialConfig(dataset="digits", backbone=backbone, img_size=32, lr=1e-2, backbone_lr_scale=0.5,
                       weight_decay=0.05).replace(**changes)


@pytest.mark.parametrize("backbone", ["test_vit", "test_resnet", "test_convnext"])
def test_layer_decay_lrs_fall_geometrically_towards_the_stem(backbone: str) -> None:
    config = _config(backbone, layer_decay=0.5)
    model = build_model_for(config, 10)
    optimizer = build_optimizer(model, model.backbone, config)
    groups = optimizer.param_groups
    layer_lr = {}
    for g in groups:
        if g["name"].startswith("backbone_layer"):
            layer_lr.setdefault(int(g["name"].removeprefix("backbone_layer").split("_")[0]), set()).add(g["lr"])
    assert all(len(lrs) == 1 for lrs in layer_lr.values())  # decay and no-decay groups of a layer agree
    lrs = [layer_lr[i].pop() for i in sorted(layer_lr)]
    assert len(lrs) >= 4
    assert lrs[-1] == pytest.approx(1e-2 * 0.5)  # the top layer learns at lr * backbone_lr_scale
    assert [b / a for a, b in zip(lrs, lrs[1:])] == pytest.approx([2.0] * (len(lrs) - 1))
    # the stem's parameters sit in the slowest group, the head's at the full lr
    stem = next(p for p in model.backbone.parameters())
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(stem)]["lr"] == pytest.approx(min(lrs))
    assert by_param[id(next(model.head.parameters()))]["lr"] == pytest.approx(1e-2)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith("_no_decay"))


def test_layer_decay_leaves_frozen_stages_out() -> None:
    config = _config("test_resnet", layer_decay=0.8, freeze_depth=2)
    model = build_model_for(config, 10)
    groups = build_optimizer(model, model.backbone, config).param_groups
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert in_groups == {id(p) for p in model.parameters() if p.requires_grad}


def test_drop_path_rate_reaches_the_backbones_blocks() -> None:
    model = build_model_for(_config("test_vit", drop_path_rate=0.3), 10)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.3) and min(rates) > 0
    plain = build_model_for(_config("test_vit"), 10)
    assert not [m for m in plain.modules() if type(m).__name__ == "DropPath"]


@pytest.mark.parametrize("name", get_args(Optimizer))
def test_every_offered_optimizer_is_built_by_timm_and_steps(name: str) -> None:
    torch.manual_seed(0)
    config = _config("test_resnet", optimizer=name, layer_decay=0.7)
    model = build_model_for(config, 3)
    optimizer = build_optimizer(model, model.backbone, config)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):  # ADOPT only starts its second moment on the first step
        optimizer.zero_grad()
        model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean().backward()
        optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert {g["name"] for g in optimizer.param_groups} >= {"head", "backbone_layer0"}


def test_sgd_without_momentum_is_plain_sgd() -> None:
    config = _config("test_resnet", optimizer="sgd", momentum=0.0)
    model = build_model_for(config, 3)
    optimizer = build_optimizer(model, model.backbone, config)
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(g["momentum"] == 0.0 and not g["nesterov"] for g in optimizer.param_groups)


@pytest.mark.parametrize("layer_decay", [None, 0.7])
def test_position_embedding_and_tokens_get_no_weight_decay(layer_decay: float | None) -> None:
    # timm's ViT lists pos_embed and cls_token in no_weight_decay(); inside tl-bench's model they sit
    # under backbone.model., and a 3-d tensor is no bias: the exemption must come from that list.
    config = _config("test_vit", layer_decay=layer_decay)
    model = build_model_for(config, 10)
    vit = model.backbone.model
    assert {"pos_embed", "cls_token"} <= vit.no_weight_decay()
    groups = build_optimizer(model, model.backbone, config).param_groups
    by_param = {id(p): g for g in groups for p in g["params"]}
    for token in (vit.pos_embed, vit.cls_token):
        assert token.ndim == 3 and by_param[id(token)]["weight_decay"] == 0.0
        assert by_param[id(token)]["name"].endswith("_no_decay")
    # Matrices not on the list still decay, in the backbone and in the head.
    assert by_param[id(vit.patch_embed.proj.weight)]["weight_decay"] == 0.05
    assert by_param[id(vit.blocks[0].attn.qkv.weight)]["weight_decay"] == 0.05
    head_matrix = next(p for p in model.head.parameters() if p.ndim > 1)
    assert by_param[id(head_matrix)]["weight_decay"] == 0.05
    assert by_param[id(vit.blocks[0].attn.qkv.bias)]["weight_decay"] == 0.0
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert all(p.ndim > 1 for p in model.parameters() if id(p) in decayed)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
