"""An ensemble: the mean of its members' logits, for models that do not share an architecture."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Ensemble(nn.Module):
    """Averages the logits of ``members`` (each mapping images to ``(N, num_classes)`` logits).

    Members are always in eval mode: ``train()`` re-applies it, so an ensemble can be handed to
    code that calls ``model.train()`` without turning on dropout or BatchNorm updates. Its
    ``num_classes`` is its members' (every member exposing one must agree), or ``num_classes``.
    """

    def __init__(self, members: Sequence[nn.Module], *, num_classes: int | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        told = {int(m.num_classes) for m in members if hasattr(m, "num_classes")}
        if num_classes is not None:
            told.add(num_classes)
        if len(told) != 1:
            raise ValueError(f"ensemble members must agree on num_classes, got {sorted(told) or 'none'}; "
                             "pass num_classes= for members that do not expose it")
        self._num_classes = told.pop()
        self.members = nn.ModuleList(members)
        self.train()

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def train(self, mode: bool = True) -> Ensemble:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


__all__ = ["Ensemble"]
