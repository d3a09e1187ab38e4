"""The backbone: any timm model without its classifier, with a freeze depth.

``Backbone(x)`` returns a list of features whose last item is the timm
model's ``forward_features`` output ((N, C, H, W) or (N, L, C)); when a neck
reads several scales, the maps of the preceding stages come first (timm's
``forward_intermediates``). Frozen stages keep ``requires_grad=False`` and
stay in eval mode, re-applied on every ``.train()`` call. Head-side modules
(pool, pre-logits norm, classifier) are not part of it: dropped, or moved
whole into ``Backbone.pre_logits`` for the ``timm`` neck.
"""

from __future__ import annotations

from typing import Any

from timm.data import resolve_model_data_config
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from tl_bench.config import FreezeDepth
from tl_bench.errors import FreezeDepthError, ModelBuildError
from tl_bench.models.adaptation import (
    AdaptationSettings,
    Adapter,
    apply_adaptation,
    insert_prompts,
    prompt_count,
)
from tl_bench.models.neck_base import FeatureInfo
from tl_bench.models.prelogits import PreLogits
from tl_bench.models.stages import StageInfo, frozen_roots, param_groups, stage_name
from tl_bench.models.timm_model import (
    check_backbone,
    count_stages,
    create_timm,
    default_img_size,
    has_class_token,
    strip_head,
)
from tl_bench.models.weights import LoadReport, check_hub_tag, load_backbone_file, parse_weights


def frozen_stage_count(depth: FreezeDepth, n_stages: int, backbone: str) -> int:
    """How many leading stages ``depth`` freezes: ``all`` is every one; anything that is not
    0..n_stages or ``all`` is a FreezeDepthError naming the backbone's range."""
    if depth == "all":
        return n_stages
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= n_stages:
        raise FreezeDepthError(
            f"freeze depth {depth!r} is out of range for {backbone}", f"0..{n_stages} or 'all'", lead=": accepted "
        )
    return depth


class Backbone(nn.Module):
    """A classifier-free timm model split into stages, the first ``freeze_depth`` frozen."""

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        img_size: int,
        freeze_depth: FreezeDepth = 0,
        scales: int = 1,
        weights: str = "scratch",
        dropped_modules: list[str] | None = None,
        load_report: LoadReport | None = None,
        pre_logits: PreLogits | None = None,
        adaptation: AdaptationSettings | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.img_size = img_size
        self.weights = weights
        self.dropped_modules = list(dropped_modules or [])
        self.load_report = load_report
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0) + prompt_count(model)
        self.has_class_token = has_class_token(model)
        # held, not registered: the neck that takes it owns (and counts) its parameters
        self._pre_logits = (pre_logits,)
        self._nhwc = getattr(model, "output_fmt", "NCHW") == "NHWC"  # Swin-style models
        self.stage_params: list[list[str]] = param_groups(model)  # parameter names per stage, stem first
        self.n_stages = len(self.stage_params)
        self.feature_indices = self._feature_indices(scales)
        info = getattr(model, "feature_info", [])
        self.feature_dims = [int(info[i]["num_chs"]) for i in self.feature_indices] + [int(model.num_features)]
        self.data_config: dict[str, Any] = dict(resolve_model_data_config(model))
        self.data_config["input_size"] = (3, img_size, img_size)
        self._frozen: list[nn.Module] = []
        self._mode = True  # the mode last asked for; self.training reads False when fully frozen
        self._adapter: tuple[Adapter | None] = (None,)  # held, not registered: its modules are the model's
        self.adapters_merged = False  # LoRA or IA3 merged into the weights (a kept model's rebuild)
        self.freeze(freeze_depth)
        if adaptation is not None:
            covered = {n for names in self.stage_params[: self.freeze_depth] for n in names}
            self.set_adapter(apply_adaptation(model, covered, adaptation, name), merged=adaptation.merged)

    def _feature_indices(self, scales: int) -> list[int]:
        """timm feature indices of the maps before the final output, for multi-scale necks."""
        if scales <= 1:
            return []
        if not hasattr(self.model, "forward_intermediates") or not getattr(self.model, "feature_info", None):
            raise ModelBuildError(
                f"backbone {self.name!r} has no forward_intermediates in timm, so it cannot feed a multi-scale neck",
                "a single-scale neck such as 'gap'",
                lead="; use ",
            )
        n = len(self.model.feature_info)
        k = min(scales, n)
        return list(range(n - k, n - 1))

    def freeze(self, depth: FreezeDepth) -> None:
        """Freeze the first ``depth`` stages (``all`` = every stage) and unfreeze the rest."""
        self.freeze_depth = frozen_stage_count(depth, self.n_stages, self.name)
        params = dict(self.model.named_parameters())
        for index, names in enumerate(self.stage_params):
            for n in names:
                params[n].requires_grad_(index >= self.freeze_depth)
        self._frozen = frozen_roots(self.model)
        self.train(self._mode)

    @property
    def adapter(self) -> Adapter | None:
        """What the adaptation method opened in the frozen stages (None for ``full``)."""
        return self._adapter[0]

    @property
    def adaptation(self) -> str:
        return self.adapter.method if self.adapter is not None else "full"

    def set_adapter(self, adapter: Adapter | None, *, merged: bool = False) -> None:
        """Hold ``adapter``; peft renames the layers it wraps, so the stages are read again."""
        self._adapter = (adapter,)
        self.adapters_merged = merged
        if adapter is not None and (adapter.tuner is not None or merged):
            self.stage_params = param_groups(self.model)
        self.train(self._mode)

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The parameters the adaptation method trains (empty for ``full``)."""
        return self.adapter.parameters(self.model) if self.adapter is not None else []

    @property
    def pre_logits(self) -> PreLogits | None:
        """timm's head-side path moved out of the model (``create_backbone(keep_head=True)``)."""
        return self._pre_logits[0]

    @property
    def nhwc(self) -> bool:
        """Whether timm's ``forward_features`` gives (N, H, W, C) maps (``forward`` turns them to NCHW)."""
        return self._nhwc

    @property
    def feature_info(self) -> FeatureInfo:
        """What this backbone hands its neck, as plain values."""
        return FeatureInfo(tuple(self.feature_dims), self.num_prefix_tokens, self._nhwc,
                           self.freeze_depth >= self.n_stages, self.pre_logits)

    @property
    def fully_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def frozen_batchnorms(self) -> list[_BatchNorm]:
        """BatchNorm layers inside the frozen stages that keep running statistics: training never
        moves them, so they hold whatever the weights brought (mean 0, variance 1 when random)."""
        return [m for root in self._frozen for m in root.modules()
                if isinstance(m, _BatchNorm) and m.track_running_stats]

    @property
    def stages(self) -> list[StageInfo]:
        params = dict(self.model.named_parameters())
        return [
            StageInfo(i, stage_name(names), sum(params[n].numel() for n in names), i < self.freeze_depth)
            for i, names in enumerate(self.stage_params)
        ]

    def train(self, mode: bool = True) -> "Backbone":
        self._mode = mode
        live = self.adapter.live_modules if self.adapter is not None else []
        if self._frozen == [self.model] and not self.training and not self.model.training and not live:
            return self  # fully frozen and in eval mode: whatever is asked, no module of it changes
        super().train(mode)
        if mode:
            # frozen stages must never update BatchNorm statistics, whoever calls train()
            for module in self._frozen:
                module.eval()
            self.training = self.model.training  # a fully frozen backbone reports eval mode too
            for module in live:
                module.train(mode)  # peft's layers in the frozen stages: their dropout follows the mode
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.feature_indices:
            final, maps = self.model.forward_intermediates(x, indices=self.feature_indices)
            feats = [*maps, final]
        else:
            feats = [self.model.forward_features(x)]
        if self._nhwc and feats[-1].ndim == 4:
            feats[-1] = feats[-1].permute(0, 3, 1, 2)
        return feats


def create_backbone(
    name: str,
    *,
    img_size: int,
    weights: str = "scratch",
    weights_path: str | None = None,
    freeze_depth: FreezeDepth = 0,
    scales: int = 1,
    keep_head: bool = False,
    drop_path_rate: float = 0.0,
    adaptation: AdaptationSettings | None = None,
) -> Backbone:
    """Create the timm model, load its weights, drop unused head modules and freeze.

    ``keep_head`` moves the head-side modules (pool, pre-logits norm) into
    ``Backbone.pre_logits`` with their weights instead of dropping them. ``adaptation`` opens a
    method's parameters in the frozen stages (models/adaptation.py).
    """
    check_backbone(name)
    choice = parse_weights(weights, weights_path)
    pretrained_name = check_hub_tag(name, choice.tag) if choice.kind == "hub" else None
    model = create_timm(name, img_size, pretrained_name, drop_path_rate)
    dropped, head = strip_head(model, name, img_size, keep_head=keep_head)
    report = load_backbone_file(model, choice.path, dropped, pre_logits=head) if choice.kind == "file" else None
    if adaptation is not None and adaptation.method == "prompt":
        insert_prompts(model, adaptation.prompt_tokens, name)  # after loading: the weights know no prompts
    return Backbone(
        model,
        name=name,
        img_size=img_size,
        freeze_depth=freeze_depth,
        scales=scales,
        weights=weights,
        dropped_modules=dropped,
        load_report=report,
        pre_logits=head,
        adaptation=adaptation,
    )


__all__ = [
    "Backbone",
    "StageInfo",
    "check_backbone",
    "count_stages",
    "create_backbone",
    "default_img_size",
    "frozen_stage_count",
    "has_class_token",
]
