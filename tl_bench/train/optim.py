"""Optimizer with a separate backbone learning rate (optionally decayed layer by layer), and a
per-step cosine schedule with warmup.

Parameter groups are formed here (backbone vs neck and head, decay vs no decay, timm's
``param_groups_layer_decay`` over the backbone's fine-grained layer groups) with each group's
lr already scaled; the optimizer itself comes from timm's ``create_optimizer_v2``. What gets no
weight decay is what timm exempts: 1-d parameters and biases, and every name a module lists in
its ``no_weight_decay()`` (a ViT's ``pos_embed``, ``cls_token``, ``reg_token``...).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Callable

import torch
from timm.optim import create_optimizer_v2, param_groups_layer_decay
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from tl_bench.config import TrialConfig
from tl_bench.errors import TrainingSetupError


def no_decay_ids(model: nn.Module) -> set[int]:
    """ids of the parameters timm would not decay: 1-d tensors and ``.bias`` (biases, norm weights:
    decaying them only hurts), and those any submodule names in its ``no_weight_decay()`` (position
    embeddings and tokens, which decay would pull towards zero). The names a module lists are
    relative to it and may hold wildcards, as timm's ``fnmatch`` reads them; matching each module's
    own names means the prefixes the module sits under (``backbone.model.``) never matter."""
    ids = {id(p) for name, p in model.named_parameters() if p.ndim <= 1 or name.endswith(".bias")}
    for module in model.modules():
        listed = getattr(module, "no_weight_decay", None)
        if not callable(listed):
            continue
        patterns = set(listed())
        ids |= {id(p) for name, p in module.named_parameters()
                if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)}
    return ids


def param_groups(model: nn.Module, backbone: nn.Module, config: TrialConfig) -> list[dict]:
    """Trainable parameters split by part (backbone vs neck and head) and by decay (``no_decay_ids``).
    With ``config.layer_decay`` the backbone is split further by ``layer_groups``. The parameters an
    adaptation method opens in the frozen stages learn at the head's rate, as part ``adapter``."""
    if config.layer_decay is not None:
        return layer_groups(model, backbone, config)
    adapter_ids = {id(p) for p in getattr(backbone, "adapter_parameters", list)()}
    backbone_ids = {id(p) for p in backbone.parameters()} - adapter_ids
    exempt = no_decay_ids(model)
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if id(param) in backbone_ids else "adapter" if id(param) in adapter_ids else "head"
        buckets.setdefault((part, id(param) not in exempt), []).append(param)
    groups = []
    for (part, decay), params in sorted(buckets.items()):
        scale = config.backbone_lr_scale if part == "backbone" else 1.0
        groups.append(
            {
                "params": params,
                "lr": config.lr * scale,
                "weight_decay": config.weight_decay if decay else 0.0,
                "name": f"{part}{'' if decay else '_no_decay'}",
            }
        )
    return groups


def layer_groups(model: nn.Module, backbone: nn.Module, config: TrialConfig) -> list[dict]:
    """timm's layer-wise lr decay over the backbone's fine-grained groups (``group_matcher(coarse=False)``):
    layer ``i`` of ``L`` learns at ``lr * backbone_lr_scale * layer_decay ** (L - 1 - i)``; neck and
    head keep ``lr``. Backbone groups are named ``backbone_layer<i>[_no_decay]`` (stem first) and keep
    their ``layer_scale``."""
    assert config.layer_decay is not None
    timm_model = getattr(backbone, "model", backbone)  # the timm model inside tl-bench's Backbone
    exempt = no_decay_ids(model)
    # timm matches names within the module it is given: name the exempt parameters as it sees them.
    no_decay_names = [name for name, p in timm_model.named_parameters() if id(p) in exempt]
    timm_groups = param_groups_layer_decay(timm_model, config.weight_decay, no_weight_decay_list=no_decay_names,
                                           layer_decay=config.layer_decay)
    scales = sorted({group["lr_scale"] for group in timm_groups})  # one per layer, stem first
    groups = []
    for group in timm_groups:
        layer_scale = group.pop("lr_scale")  # baked into lr: timm's schedulers would apply it again
        suffix = "_no_decay" if all(id(p) in exempt for p in group["params"]) else ""
        groups.append({**group, "lr": config.lr * config.backbone_lr_scale * layer_scale,
                       "layer_scale": layer_scale, "name": f"backbone_layer{scales.index(layer_scale)}{suffix}"})
    backbone_ids = {id(p) for p in backbone.parameters()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    for decay in (True, False):
        params = [p for p in rest if (id(p) not in exempt) == decay]
        if params:
            groups.append({"params": params, "lr": config.lr, "weight_decay": config.weight_decay if decay else 0.0,
                           "name": "head" if decay else "head_no_decay"})
    return groups


def build_optimizer(model: nn.Module, backbone: nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    """timm's ``create_optimizer_v2`` on the groups of ``param_groups``; SGD momentum as configured."""
    groups = param_groups(model, backbone, config)
    if not groups:
        raise TrainingSetupError(
            "the model has no trainable parameters", "unfreeze a part or add a trainable head", lead=": "
        )
    name = config.optimizer
    if name == "sgd" and config.momentum == 0:
        name = "momentum"  # timm's sgd is Nesterov, which needs momentum; plain SGD then
    return create_optimizer_v2(groups, opt=name, lr=config.lr, weight_decay=config.weight_decay,
                               momentum=config.momentum)


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the base lr at step ``t`` (0-based, evaluated before the step).

    Linear warmup from 1/(warmup+1) to 1, then half a cosine down to 0 at the
    last step, so the last update is small but not zero.
    """
    total_steps = max(total_steps, 1)
    warmup_steps = min(max(warmup_steps, 0), total_steps - 1)
    decay_steps = total_steps - warmup_steps

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / decay_steps
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrialConfig, steps_per_epoch: int) -> LambdaLR:
    total = steps_per_epoch * config.epochs
    warmup = round(config.warmup_epochs * steps_per_epoch)
    return LambdaLR(optimizer, cosine_with_warmup(total, warmup))


__all__ = ["build_optimizer", "build_scheduler", "cosine_with_warmup", "layer_groups", "no_decay_ids", "param_groups"]
