"""The inner loop: one epoch of optimisation steps, with a finiteness check that costs no stalls.

Per-step losses stay on the device; they are read in groups (every step on
CPU where a read is free, every 32 steps on CUDA) to find the first
non-finite one, so a NaN is reported with its exact epoch and step.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable

import torch
from torch import nn

from tl_bench.errors import NonFiniteLossError
from tl_bench.train.batches import ImageFeeder
from tl_bench.train.features import FeatureFeeder
from tl_bench.train.recipe import Recipe


class EpochRunner:
    """The inner loop: one epoch of optimisation steps with a cheap finiteness check."""

    def __init__(
        self,
        model: nn.Module,
        feeder: ImageFeeder | FeatureFeeder,
        recipe: Recipe,
        autocast: Callable[[], AbstractContextManager[Any]],
        device: torch.device,
    ) -> None:
        self.model, self.feeder, self.recipe = model, feeder, recipe
        self.optimizer, self.criterion = recipe.optimizer, recipe.mixer.criterion
        self.autocast = autocast
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.steps = 0
        groups = self.optimizer.param_groups
        self.head_group = next((g for g in groups if g.get("name", "").startswith("head")), groups[0])
        # On CPU a host read is free; on CUDA it stalls the queue, so look every few steps.
        self.check_every = 1 if device.type == "cpu" else 32
        self._trained_keys: list[str] | None = None
        self._sources: dict[int, dict[str, torch.Tensor]] = {}  # id(module) -> its trained tensors

    def epoch(self, epoch: int, generator: torch.Generator) -> tuple[float, float, int]:
        """Run one epoch; returns (mean training loss per image, last lr of neck/head, images)."""
        if self._trained_keys is None:
            self._trained_keys = self._keys_changed_by_training()
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        checked, lr = 0, self.head_group["lr"]
        recipe, scaler = self.recipe, self.recipe.scaler
        for inputs, labels in self.feeder.train_batches(generator):
            inputs, targets = recipe.mixer(inputs, labels)
            with self.autocast():
                logits = self.feeder.forward(self.model, inputs)
            loss = self.criterion(logits.float(), targets)
            self.optimizer.zero_grad(set_to_none=True)
            # a disabled scaler (every precision but fp16) passes each call straight through
            scaler.scale(loss).backward()
            scaler.unscale_(self.optimizer)
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.params, recipe.grad_clip, foreach=True)
            lr = self.head_group["lr"]
            scaler.step(self.optimizer)
            scaler.update()
            self.steps += 1
            recipe.schedule.step_update()
            if recipe.ema is not None:
                recipe.ema.update(self.model, step=self.steps)
            losses.append(loss.detach())
            sizes.append(len(targets))
            if len(losses) - checked >= self.check_every:
                self._check(losses, checked, epoch)
                checked = len(losses)
        self._check(losses, checked, epoch)
        weights = torch.tensor(sizes, dtype=torch.float32, device=losses[0].device)
        mean_loss = (torch.stack(losses).float() * weights).sum() / weights.sum()
        return float(mean_loss), float(lr), sum(sizes)

    @staticmethod
    def _check(losses: list[torch.Tensor], start: int, epoch: int) -> None:
        if start >= len(losses):
            return
        recent = torch.stack(losses[start:])
        finite = torch.isfinite(recent)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0, 0])
            raise NonFiniteLossError(epoch, start + first + 1, float(recent[first]))

    def _keys_changed_by_training(self) -> list[str]:
        # Read while the model is in train mode: frozen modules stay in eval
        # mode, so their buffers (BatchNorm statistics) never move.
        keys = {name for name, p in self.model.named_parameters() if p.requires_grad}
        for prefix, module in self.model.named_modules():
            if module.training:
                keys.update(f"{prefix}.{b}" if prefix else b for b, _ in module.named_buffers(recurse=False))
        return [k for k in self.model.state_dict() if k in keys]

    def snapshot(self, module: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """CPU copy of what training changes: trainable parameters and buffers of modules in train mode,
        read from ``module`` (an EMA copy of the model) or the model itself."""
        assert self._trained_keys is not None, "snapshot before the first epoch"
        source = module if module is not None else self.model
        tensors = self._sources.get(id(source))
        if tensors is None:  # training and the EMA update these tensors in place: look them up once
            state = source.state_dict(keep_vars=True)
            tensors = self._sources[id(source)] = {k: state[k] for k in self._trained_keys}
        return {k: t.detach().to("cpu", copy=True) for k, t in tensors.items()}


__all__ = ["EpochRunner"]
