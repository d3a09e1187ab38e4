"""The backbone: any timm model without its classifier, with a freeze depth.

``Backbone(x)`` returns a list of features whose last item is the timm
model's ``forward_features`` output ((N, C, H, W) or (N, L, C)); when a neck
reads several scales, the maps of the preceding stages come first (timm's
``forward_intermediates``). Frozen stages keep ``requires_grad=False`` and
stay in eval mode, re-applied on every ``.train()`` call.
"""

from __future__ import annotations

import difflib
import functools
import textwrap
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from timm.models import get_pretrained_cfg
from torch import Tensor, nn

from tl_bench.config import FreezeDepth
from tl_bench.errors import FreezeDepthError, ModelBuildError, UnknownBackboneError
from tl_bench.models.stages import StageInfo, drop_modules, frozen_roots, param_groups, stage_name, unused_head_modules
from tl_bench.models.weights import LoadReport, check_hub_tag, create_pretrained, load_backbone_file, parse_weights


@functools.lru_cache(maxsize=1)
def _all_models() -> tuple[str, ...]:
    return tuple(timm.list_models())


def check_backbone(name: str) -> None:
    """UnknownBackboneError naming the closest timm names when timm does not know ``name``."""
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, _all_models(), n=5, cutoff=0.5)
        hint = f"closest timm names: {', '.join(close)}" if close else "no close timm name"
        raise UnknownBackboneError(
            f"unknown backbone {name!r}", f"{hint} (see `tl-bench list backbones PATTERN`)", lead=": "
        )
    if tag and name not in timm.list_pretrained(f"{arch}.*"):
        tags = ", ".join(t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")[:8]) or "none"
        raise UnknownBackboneError(
            f"backbone {name!r}: timm has no tag {tag!r} for {arch}", tags, lead="; accepted tags: "
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return textwrap.shorten(text.splitlines()[0], 200, placeholder=" ...") if text else type(err).__name__


def _create_timm(
    name: str, img_size: int | None, pretrained_name: str | None = None, drop_path_rate: float = 0.0
) -> nn.Module:
    """The classifier-free timm model; ``img_size`` is passed to models that take it (ViTs, Swin),
    ``drop_path_rate`` (stochastic depth) only when set, so models without it build as before."""

    def build(**kwargs: Any) -> nn.Module:
        if drop_path_rate:
            kwargs["drop_path_rate"] = drop_path_rate
        if pretrained_name:
            return create_pretrained(pretrained_name, num_classes=0, **kwargs)
        return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)

    if img_size is None:
        return build()
    try:
        return build(img_size=img_size)
    except TypeError as err:
        if "img_size" not in str(err):
            _refuse_drop_path(name, err)
            raise
        try:
            return build()  # a CNN: any input size works without telling it
        except TypeError as err2:
            _refuse_drop_path(name, err2)
            raise
    except (AssertionError, ValueError, RuntimeError) as err:
        raise ModelBuildError(f"backbone {name!r} cannot be built for img_size {img_size}: {_first_line(err)}") from None


def _refuse_drop_path(name: str, err: TypeError) -> None:
    if "drop_path_rate" in str(err):
        raise ModelBuildError(f"backbone {name!r} has no stochastic depth (drop_path_rate)",
                              "drop_path_rate 0 for this backbone") from None


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


# the probe's answer depends on architecture and input size only: one forward per pair and process
_UNUSED: dict[tuple[str, int], list[str]] = {}


def _drop_unused(model: nn.Module, name: str, img_size: int) -> list[str]:
    """Remove head modules ``forward_features`` never calls; a size the model cannot take fails here."""
    key = (name, img_size)
    if key not in _UNUSED:
        try:
            _UNUSED[key] = unused_head_modules(model, img_size)
        except (RuntimeError, ValueError, AssertionError) as err:
            raise ModelBuildError(f"backbone {name!r} cannot run at img_size {img_size}: {_first_line(err)}") from None
    drop_modules(model, _UNUSED[key])
    return list(_UNUSED[key])


@functools.lru_cache(maxsize=None)
def count_stages(name: str) -> int:
    """Number of stages of a timm model (stem first), without allocating its weights."""
    check_backbone(name)
    try:
        with torch.device("meta"):
            model = _create_timm(name, None)
            _drop_unused(model, name, _default_size(model))
    except Exception:  # a few models cannot initialise or run on the meta device
        model = _create_timm(name, None)
        _drop_unused(model, name, _default_size(model))
    return len(param_groups(model))


def _default_size(model: nn.Module) -> int:
    return int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])


def default_img_size(name: str) -> int:
    """The input size timm's pretrained config gives ``name`` (224 when it has none)."""
    check_backbone(name)
    cfg = get_pretrained_cfg(name)
    return int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224


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
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.img_size = img_size
        self.weights = weights
        self.dropped_modules = list(dropped_modules or [])
        self.load_report = load_report
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
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
        self.freeze(freeze_depth)

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
    def fully_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    @property
    def stages(self) -> list[StageInfo]:
        params = dict(self.model.named_parameters())
        return [
            StageInfo(i, stage_name(names), sum(params[n].numel() for n in names), i < self.freeze_depth)
            for i, names in enumerate(self.stage_params)
        ]

    def train(self, mode: bool = True) -> "Backbone":
        self._mode = mode
        super().train(mode)
        if mode:
            # frozen stages must never update BatchNorm statistics, whoever calls train()
            for module in self._frozen:
                module.eval()
            self.training = self.model.training  # a fully frozen backbone reports eval mode too
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
    drop_path_rate: float = 0.0,
) -> Backbone:
    """Create the timm model, load its weights, drop unused head modules and freeze."""
    check_backbone(name)
    choice = parse_weights(weights, weights_path)
    pretrained_name = check_hub_tag(name, choice.tag) if choice.kind == "hub" else None
    model = _create_timm(name, img_size, pretrained_name, drop_path_rate)
    dropped = _drop_unused(model, name, img_size)
    report = load_backbone_file(model, choice.path, dropped) if choice.kind == "file" else None
    return Backbone(
        model,
        name=name,
        img_size=img_size,
        freeze_depth=freeze_depth,
        scales=scales,
        weights=weights,
        dropped_modules=dropped,
        load_report=report,
    )


__all__ = [
    "Backbone",
    "StageInfo",
    "check_backbone",
    "count_stages",
    "create_backbone",
    "default_img_size",
    "frozen_stage_count",
]
