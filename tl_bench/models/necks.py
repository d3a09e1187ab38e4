"""Necks: how backbone features become one vector per image.

Every neck takes the backbone's feature list (last item: (N, C, H, W) maps,
(N, L, C) token sequences or already pooled (N, C) vectors) and returns
(N, out_dim). Registry keys are the strings users write in study files.

Pooling necks (``gap``, ``gmp``, ``avgmax``, ``gem``) reduce over positions of
a map, or over the patch tokens of a ViT: its prefix tokens (class and
register tokens, ``num_prefix_tokens`` of them) are left out, as timm's own
``avg`` pooling does. They read ``forward_features`` as it is, without the
norm some timm models apply after it (ConvNeXt's ``head.norm``, the
``fc_norm`` of average-pooled ViTs); ``timm`` is the neck that applies it.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
from torch import Tensor, nn

from tl_bench.errors import ModelBuildError, UnknownNeckError
from tl_bench.models.neck_base import Neck, as_tokens
from tl_bench.models.prelogits import TimmNeck
from tl_bench.models.part_registry import Registry


class GapNeck(Neck):
    """Global average of the feature map or of the patch tokens (class and register tokens left out)."""

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        return self.tokens(feats).mean(1)


class GmpNeck(Neck):
    """Global max of the feature map or of the patch tokens."""

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        return self.tokens(feats).amax(1)


class AvgMaxNeck(Neck):
    """Mean of global average and global max (timm's 'avgmax')."""

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        t = self.tokens(feats)
        return 0.5 * (t.mean(1) + t.amax(1))


class GemNeck(Neck):
    """Generalized mean pooling with a learnable exponent p (p=1 average, large p max)."""

    def __init__(self, in_dims: Sequence[int], neck_dim: int = 256, num_prefix_tokens: int = 0) -> None:
        super().__init__(in_dims, neck_dim, num_prefix_tokens)
        self.p = nn.Parameter(torch.tensor(3.0))
        self.eps = 1e-6

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        p = self.p.clamp(min=1.0)  # below 1 the mean stops being a pooling
        return self.tokens(feats).clamp(min=self.eps).pow(p).mean(1).pow(1.0 / p)


class AttnNeck(Neck):
    """Attention pooling: one learned query attends over all positions or tokens."""

    def __init__(self, in_dims: Sequence[int], neck_dim: int = 256, num_prefix_tokens: int = 0) -> None:
        super().__init__(in_dims, neck_dim, num_prefix_tokens)
        heads = next(h for h in (8, 4, 2, 1) if self.in_dim % h == 0)
        self.query = nn.Parameter(torch.randn(1, 1, self.in_dim) * 0.02)
        self.norm = nn.LayerNorm(self.in_dim)
        self.attn = nn.MultiheadAttention(self.in_dim, heads, batch_first=True)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        kv = self.norm(as_tokens(feats[-1]))  # class token included: it is worth attending to
        # a copy, not an expand view: views of parameters made under no_grad trip autograd hooks
        q = self.query.repeat(kv.shape[0], 1, 1)
        return self.attn(q, kv, kv, need_weights=False)[0][:, 0]


class BottleneckNeck(Neck):
    """Global average, then a linear projection to neck_dim and LayerNorm."""

    def __init__(self, in_dims: Sequence[int], neck_dim: int = 256, num_prefix_tokens: int = 0) -> None:
        super().__init__(in_dims, neck_dim, num_prefix_tokens)
        # LayerNorm, not BatchNorm1d: a last batch of one image must still train
        self.proj = nn.Sequential(nn.Linear(self.in_dim, neck_dim), nn.LayerNorm(neck_dim))
        self.out_dim = neck_dim

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        return self.proj(self.tokens(feats).mean(1))


class MlpNeck(Neck):
    """Global average, then two linear layers with GELU between them."""

    def __init__(self, in_dims: Sequence[int], neck_dim: int = 256, num_prefix_tokens: int = 0) -> None:
        super().__init__(in_dims, neck_dim, num_prefix_tokens)
        self.mlp = nn.Sequential(nn.Linear(self.in_dim, neck_dim), nn.GELU(), nn.Linear(neck_dim, neck_dim))
        self.out_dim = neck_dim

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        return self.mlp(self.tokens(feats).mean(1))


class MultiScaleNeck(Neck):
    """Pooled features of the last 3 stages, each normalized, concatenated and projected to neck_dim."""

    scales: ClassVar[int] = 3

    def __init__(self, in_dims: Sequence[int], neck_dim: int = 256, num_prefix_tokens: int = 0) -> None:
        super().__init__(in_dims, neck_dim, num_prefix_tokens)
        # stages differ in scale by orders of magnitude; normalize each before fusing
        self.norms = nn.ModuleList(nn.LayerNorm(int(d)) for d in in_dims)
        self.proj = nn.Linear(sum(int(d) for d in in_dims), neck_dim)
        self.out_dim = neck_dim

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        last = len(feats) - 1
        pooled = [
            norm(as_tokens(f, self.num_prefix_tokens if i == last else 0).mean(1))
            for i, (norm, f) in enumerate(zip(self.norms, feats))
        ]
        return self.proj(torch.cat(pooled, dim=1))


class ClsNeck(Neck):
    """The class token of ViT-like backbones (DeiT/ViT/DINO-style probing)."""

    needs_class_token: ClassVar[bool] = True

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        return feats[-1][:, 0]  # timm puts the class token first, before register and patch tokens


def check_neck_fits(neck: str, backbone: str, has_class_token: bool) -> None:
    """ModelBuildError, one line naming the backbone, when ``neck`` cannot read what ``backbone`` gives."""
    if NECKS.check(neck).needs_class_token and not has_class_token:
        fitting = ", ".join(n for n, cls in NECKS.items() if not cls.needs_class_token)
        raise ModelBuildError(
            f"neck {neck!r} reads the class token and backbone {backbone!r} has none",
            f"{fitting} for {backbone}; {neck} for backbones with a class token (ViT, DeiT, BEiT, EVA)",
        )


NECKS: Registry[type[Neck]] = Registry(
    "neck",
    UnknownNeckError,
    {
        "gap": GapNeck,
        "gmp": GmpNeck,
        "avgmax": AvgMaxNeck,
        "gem": GemNeck,
        "attn": AttnNeck,
        "bottleneck": BottleneckNeck,
        "mlp": MlpNeck,
        "multiscale": MultiScaleNeck,
        "cls": ClsNeck,
        "timm": TimmNeck,
    },
)


__all__ = [
    "NECKS",
    "AttnNeck",
    "AvgMaxNeck",
    "BottleneckNeck",
    "ClsNeck",
    "GapNeck",
    "GemNeck",
    "GmpNeck",
    "MlpNeck",
    "MultiScaleNeck",
    "Neck",
    "TimmNeck",
    "as_tokens",
    "check_neck_fits",
]
