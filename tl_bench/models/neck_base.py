"""The neck contract: a feature list in, (N, out_dim) out; and the token view every pooling shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from torch import Tensor, nn


@dataclass(frozen=True)
class FeatureInfo:
    """What a backbone hands a neck, as plain values (a neck takes numbers, never the backbone itself)."""

    dims: tuple[int, ...]  # channel widths of the feature list, the final output last
    num_prefix_tokens: int = 0  # class and register tokens leading a token sequence
    nhwc: bool = False  # timm's forward_features gave (N, H, W, C) maps (the feature list holds NCHW)
    frozen: bool = False  # the whole backbone is frozen (its last stage included)
    pre_logits: nn.Module | None = None  # timm's head-side path moved out of the model, for the ``timm`` neck


def as_tokens(x: Tensor, num_prefix_tokens: int = 0) -> Tensor:
    """(N, L, C) view of any backbone output; prefix tokens (class, registers) dropped when asked."""
    if x.ndim == 4:
        return x.flatten(2).transpose(1, 2)
    if x.ndim == 3:
        return x[:, num_prefix_tokens:] if x.shape[1] > num_prefix_tokens else x
    if x.ndim == 2:
        return x.unsqueeze(1)
    raise ValueError(f"expected backbone features of 2, 3 or 4 dims, got shape {tuple(x.shape)}")


class Neck(nn.Module):
    """Base class: ``in_dims`` are the channel widths of the feature list, last one final."""

    scales: ClassVar[int] = 1  # how many feature levels the neck reads from the backbone
    needs_class_token: ClassVar[bool] = False  # only backbones with a class token can feed it
    keeps_head: ClassVar[bool] = False  # takes over timm's head-side modules (Backbone.pre_logits)

    def __init__(self, in_dims: Sequence[int], neck_dim: int = 256, num_prefix_tokens: int = 0) -> None:
        super().__init__()
        self.in_dim = int(in_dims[-1])
        self.num_prefix_tokens = num_prefix_tokens
        self.out_dim = self.in_dim

    @classmethod
    def for_features(cls, info: FeatureInfo, neck_dim: int = 256) -> Neck:
        """The neck fed by a backbone that gives ``info`` (its feature widths and prefix tokens)."""
        return cls(info.dims, neck_dim=neck_dim, num_prefix_tokens=info.num_prefix_tokens)

    def tokens(self, feats: Sequence[Tensor]) -> Tensor:
        return as_tokens(feats[-1], self.num_prefix_tokens)


__all__ = ["FeatureInfo", "Neck", "as_tokens"]
