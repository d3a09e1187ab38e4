"""Creating and probing timm models: names, input sizes, stage counts, head-side modules.

Everything here asks timm about an architecture; ``tl_bench.models.backbone``
turns one built model into a ``Backbone``.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Callable, TypeVar

import timm
import torch
from timm.models import get_pretrained_cfg
from torch import Tensor, nn

from tl_bench.errors import ModelBuildError, UnknownBackboneError, first_line
from tl_bench.models.prelogits import PreLogits
from tl_bench.models.stages import drop_modules, head_side_children, param_groups, unused_head_modules
from tl_bench.models.weights import create_pretrained

T = TypeVar("T")


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


def create_timm(
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
        raise ModelBuildError(
            f"backbone {name!r} cannot be built for img_size {img_size}: {first_line(err, 200)}"
        ) from None


def _refuse_drop_path(name: str, err: TypeError) -> None:
    if "drop_path_rate" in str(err):
        raise ModelBuildError(f"backbone {name!r} has no stochastic depth (drop_path_rate)",
                              "drop_path_rate 0 for this backbone") from None


# the probes' answers depend on architecture and input size only: one forward per pair and process
_UNUSED: dict[tuple[str, int], list[str]] = {}
_HEAD_SIDE: dict[tuple[str, int], list[str]] = {}


def _probe(memo: dict[tuple[str, int], list[str]], probe: Any, model: nn.Module, name: str, img_size: int) -> list[str]:
    key = (name, img_size)
    if key not in memo:
        try:
            memo[key] = probe(model, img_size)
        except (RuntimeError, ValueError, AssertionError) as err:
            raise ModelBuildError(
                f"backbone {name!r} cannot run at img_size {img_size}: {first_line(err, 200)}"
            ) from None
    return list(memo[key])


def strip_head(
    model: nn.Module, name: str, img_size: int, *, keep_head: bool = False
) -> tuple[list[str], PreLogits | None]:
    """Drop the head modules ``forward_features`` never calls; a size the model cannot take fails here.

    ``keep_head`` first moves the head-side children (pool, pre-logits norm)
    whole, with their weights, into a ``PreLogits``; nothing under them is
    dropped. Returns the dropped names and that ``PreLogits`` (or None).
    """
    # both probes read the whole model, before anything is moved or dropped
    unused = _probe(_UNUSED, unused_head_modules, model, name, img_size)
    head = PreLogits(model, _probe(_HEAD_SIDE, head_side_children, model, name, img_size)) if keep_head else None
    dropped = [n for n in unused if head is None or n.split(".")[0] not in head.names]
    drop_modules(model, dropped)
    return dropped, head


def _on_meta(name: str, read: Callable[[nn.Module], T]) -> T:
    """``read`` of the classifier-free model ``name``, built without allocating its weights."""
    try:
        with torch.device("meta"):
            return read(create_timm(name, None))
    except Exception:  # a few models cannot initialise or run on the meta device
        return read(create_timm(name, None))


@functools.lru_cache(maxsize=None)
def count_stages(name: str) -> int:
    """Number of stages of a timm model (stem first), without allocating its weights."""
    check_backbone(name)

    def count(model: nn.Module) -> int:
        strip_head(model, name, _default_size(model))
        return len(param_groups(model))

    return _on_meta(name, count)


def has_class_token(model: nn.Module) -> bool:
    """Whether a timm model prepends a class token (ViT, DeiT, BEiT, EVA ...: ``cls_token`` set)."""
    return isinstance(getattr(model, "cls_token", None), Tensor)


@functools.lru_cache(maxsize=None)
def backbone_has_class_token(name: str) -> bool:
    """``has_class_token`` of the timm model ``name``, without allocating its weights."""
    check_backbone(name)
    return _on_meta(name, has_class_token)


@functools.lru_cache(maxsize=None)
def backbone_takes_prompts(name: str) -> bool:
    """Whether the timm model ``name`` can carry prompt tokens (adaptation ``prompt``), without
    allocating its weights."""
    from tl_bench.models.adaptation import takes_prompts

    check_backbone(name)
    return _on_meta(name, takes_prompts)


def _default_size(model: nn.Module) -> int:
    return int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])


def default_img_size(name: str) -> int:
    """The input size timm's pretrained config gives ``name`` (224 when it has none)."""
    check_backbone(name)
    cfg = get_pretrained_cfg(name)
    return int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224


__all__ = [
    "backbone_has_class_token",
    "backbone_takes_prompts",
    "check_backbone",
    "count_stages",
    "create_timm",
    "default_img_size",
    "has_class_token",
    "strip_head",
]
