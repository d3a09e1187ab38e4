"""The transfer model: backbone | neck | head, and the one function that builds it."""

from __future__ import annotations

from torch import Tensor, nn

from tl_bench.config import FreezeDepth, TrialConfig
from tl_bench.errors import ModelBuildError
from tl_bench.models.adaptation import AdaptationSettings, check_prompt_neck
from tl_bench.models.backbone import Backbone, create_backbone
from tl_bench.models.heads import HEADS, Head
from tl_bench.models.necks import NECKS, Neck, check_neck_fits
from tl_bench.models.timm_model import backbone_has_class_token


class TransferModel(nn.Module):
    """``head(neck(backbone(x)))``, split at the backbone output so features can be cached."""

    def __init__(self, backbone: Backbone, neck: Neck, head: Head, *, neck_name: str = "", head_name: str = "") -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.neck_name = neck_name or type(neck).__name__
        self.head_name = head_name or type(head).__name__

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def img_size(self) -> int:
        return self.backbone.img_size

    def extract_feat(self, x: Tensor) -> list[Tensor]:
        """Backbone outputs: last item is ``forward_features(x)``, earlier ones extra scales for the neck."""
        return self.backbone(x)

    def forward_from_features(self, feats: list[Tensor]) -> Tensor:
        """Neck and head on ``extract_feat``'s output (live or cached) -> logits (N, num_classes)."""
        return self.head(self.neck(feats))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_from_features(self.extract_feat(x))

    def extra_repr(self) -> str:
        b = self.backbone
        return (
            f"backbone={b.name}, weights={b.weights}, freeze_depth={b.freeze_depth}/{b.n_stages}, "
            f"adaptation={b.adaptation}, neck={self.neck_name}, head={self.head_name}"
        )


def build_model(
    backbone: str,
    *,
    num_classes: int,
    img_size: int,
    weights: str = "scratch",
    weights_path: str | None = None,
    freeze_depth: FreezeDepth = 0,
    neck: str = "gap",
    head: str = "linear",
    neck_dim: int = 256,
    head_hidden: int = 256,
    drop_path_rate: float = 0.0,
    adaptation: AdaptationSettings | None = None,
) -> TransferModel:
    """Build backbone (timm, weights, frozen stages), neck and head from their names.

    Names are checked before anything is created, so a typo costs nothing.
    """
    neck_cls, head_cls = NECKS.check(neck), HEADS.check(head)
    if num_classes < 1 or img_size < 1:
        raise ModelBuildError(f"num_classes and img_size must be positive, got {num_classes} and {img_size}")
    if neck_cls.needs_class_token:
        check_neck_fits(neck, backbone, backbone_has_class_token(backbone))
    if adaptation is not None and adaptation.method == "prompt":
        check_prompt_neck(neck, neck_cls.scales, neck_cls.keeps_head)
    bb = create_backbone(
        backbone,
        img_size=img_size,
        weights=weights,
        weights_path=weights_path,
        freeze_depth=freeze_depth,
        scales=neck_cls.scales,
        keep_head=neck_cls.keeps_head,
        drop_path_rate=drop_path_rate,
        adaptation=adaptation,
    )
    nk = neck_cls.for_features(bb.feature_info, neck_dim=neck_dim)
    hd = head_cls(nk.out_dim, num_classes, hidden=head_hidden)
    return TransferModel(bb, nk, hd, neck_name=neck, head_name=head)


def build_model_for(
    config: TrialConfig, num_classes: int, *, load_weights: bool = True, adapters_merged: bool = False
) -> TransferModel:
    """The model a trial config names; ``load_weights=False`` starts the backbone from scratch,
    for weights about to be replaced by trained ones (no checkpoint file or hub needed), and
    ``adapters_merged`` builds it for weights whose LoRA or IA3 layers were merged."""
    return build_model(
        config.backbone,
        num_classes=num_classes,
        img_size=config.img_size,
        weights=config.weights if load_weights else "scratch",
        weights_path=config.weights_path if load_weights else None,
        freeze_depth=config.freeze_depth,
        neck=config.neck,
        head=config.head,
        neck_dim=config.neck_dim,
        head_hidden=config.head_hidden,
        drop_path_rate=config.drop_path_rate,
        adaptation=AdaptationSettings.of(config, merged=adapters_merged),
    )


__all__ = ["TransferModel", "build_model", "build_model_for"]
