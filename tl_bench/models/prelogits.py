"""A timm model's own pre-logits path, carried as a module of its own.

``forward_head(x, pre_logits=True)`` is how timm turns ``forward_features``
into the vector its classifier reads: its global pool (or class token, or
attention pool), ``fc_norm`` or ``head.norm``, as that model defines them.
``PreLogits`` moves the head-side children of a timm model (those
``forward_features`` never calls) out of it and keeps them on a shell of the
same class, so the call is timm's own code with timm's own (pretrained)
modules, and the backbone keeps only what ``forward_features`` runs.
``TimmNeck`` (registry name ``timm``) is the neck made of it.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from torch import Tensor, nn

from tl_bench.errors import ModelBuildError
from tl_bench.models.neck_base import FeatureInfo, Neck


class PreLogits(nn.Module):
    """``model.forward_head(x, pre_logits=True)``, holding only the children that path uses.

    ``names`` are the head-side children moved here from ``model`` (each left
    there as ``nn.Identity``). Parameter names stay timm's own under ``model.``
    (``model.head.norm.weight``, ``model.fc_norm.weight``).
    """

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        cls = type(model)
        shell = cls.__new__(cls)
        nn.Module.__init__(shell)
        # plain settings forward_head reads: global_pool, num_prefix_tokens, drop_rate, ...
        shell.__dict__.update({k: v for k, v in vars(model).items() if not k.startswith("_")})
        for name in names:
            shell._modules[name] = model._modules[name]
            model._modules[name] = nn.Identity()
        self.model = shell
        self.names = list(names)
        self.out_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_head(x, pre_logits=True)

    def extra_repr(self) -> str:
        return f"timm {type(self.model).__name__}.forward_head(pre_logits=True)"


class TimmNeck(Neck):
    """The backbone's own pre-logits path: timm's forward_head(pre_logits=True), its norm included."""

    keeps_head: ClassVar[bool] = True

    def __init__(
        self,
        in_dims: Sequence[int],
        neck_dim: int = 256,
        num_prefix_tokens: int = 0,
        *,
        pre_logits: PreLogits | None = None,
        nhwc: bool = False,
        frozen: bool = False,
    ) -> None:
        super().__init__(in_dims, neck_dim, num_prefix_tokens)
        if pre_logits is None:
            raise ModelBuildError("the 'timm' neck needs the backbone's head-side modules", "build_model(neck='timm')",
                                  lead="; use ")
        self.pre_logits = pre_logits
        self.out_dim = pre_logits.out_dim
        self.nhwc, self.frozen = nhwc, frozen
        pre_logits.requires_grad_(not frozen)
        self.train()

    @classmethod
    def for_features(cls, info: FeatureInfo, neck_dim: int = 256) -> Neck:
        # the pre-logits norm follows the last stage: it trains exactly when that stage trains,
        # so freeze_depth 'all' is timm's linear probe (only the head learns)
        pre_logits = info.pre_logits if isinstance(info.pre_logits, PreLogits) else None
        return cls(info.dims, neck_dim, info.num_prefix_tokens, pre_logits=pre_logits, nhwc=info.nhwc,
                   frozen=info.frozen)

    def train(self, mode: bool = True) -> "TimmNeck":
        super().train(mode)
        if self.frozen:
            self.pre_logits.eval()  # frozen like the backbone: no dropout, no moving statistics
        return self

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        x = feats[-1]
        if self.nhwc and x.ndim == 4:
            x = x.permute(0, 2, 3, 1)  # back to the layout timm's forward_features gave
        return self.pre_logits(x)


__all__ = ["PreLogits", "TimmNeck"]
