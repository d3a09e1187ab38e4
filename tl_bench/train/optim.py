"""Optimizer with a separate backbone learning rate, and a per-step cosine schedule with warmup."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from tl_bench.config import TrialConfig
from tl_bench.errors import TrainingSetupError


def param_groups(model: nn.Module, backbone: nn.Module, config: TrialConfig) -> list[dict]:
    """Trainable parameters split by part (backbone vs neck and head) and by decay.

    Biases and normalisation weights (1-d tensors) get no weight decay, as in
    timm's ``param_groups_weight_decay``; decaying them only hurts.
    """
    backbone_ids = {id(p) for p in backbone.parameters()}
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if id(param) in backbone_ids else "head"
        buckets.setdefault((part, param.ndim > 1), []).append(param)
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


def build_optimizer(model: nn.Module, backbone: nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, backbone, config)
    if not groups:
        raise TrainingSetupError(
            "the model has no trainable parameters", "unfreeze a part or add a trainable head", lead=": "
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    raise TrainingSetupError(f"unknown optimizer {config.optimizer!r}", "adamw, sgd")


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


__all__ = ["param_groups", "build_optimizer", "build_scheduler", "cosine_with_warmup"]
