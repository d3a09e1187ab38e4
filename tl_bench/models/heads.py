"""Heads: how the neck's vector becomes class scores (N, num_classes)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tl_bench.errors import UnknownHeadError
from tl_bench.models.part_registry import Registry


class Head(nn.Module):
    """Base class: (N, in_dim) -> (N, num_classes); ``hidden`` is used by heads with a hidden layer."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.in_dim, self.num_classes = in_dim, num_classes


class LinearHead(Head):
    """One linear layer."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__(in_dim, num_classes, hidden)
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class MlpHead(Head):
    """Linear to ``hidden``, GELU, linear to the classes."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__(in_dim, num_classes, hidden)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class CosineHead(Head):
    """Cosine classifier: normalized features times normalized class weights, learnable scale."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__(in_dim, num_classes, hidden)
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        # cosines live in [-1, 1]; softmax needs a scale, learned in log space so it stays positive
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, x: Tensor) -> Tensor:
        cos = F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))
        return self.log_scale.clamp(max=math.log(100.0)).exp() * cos


class NormLinearHead(Head):
    """LayerNorm, then one linear layer."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__(in_dim, num_classes, hidden)
        self.norm = nn.LayerNorm(in_dim)
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.norm(x))


HEADS: Registry[type[Head]] = Registry(
    "head",
    UnknownHeadError,
    {"linear": LinearHead, "mlp": MlpHead, "cosine": CosineHead, "norm_linear": NormLinearHead},
)


__all__ = ["HEADS", "CosineHead", "Head", "LinearHead", "MlpHead", "NormLinearHead"]
