"""Stages of a timm model, one definition for every architecture.

Stages are timm's own coarse parameter groups (``group_matcher(coarse=True)``
through ``timm.models.group_parameters``), stem first. Freeze depth k freezes
the first k of them. Head-side modules that ``forward_features`` never calls
(ConvNeXt's ``head.norm``, MobileNetV3's ``conv_head``, ViT's ``fc_norm``)
are removed first: they would otherwise count as a stage and as parameters
that can never receive a gradient. The ``timm`` neck takes them over instead
(``head_side_children``: what ``forward_head`` runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from timm.models import group_parameters
from timm.models.convnext import ConvNeXt
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from timm.models.resnet import ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn


@dataclass(frozen=True)
class StageInfo:
    index: int  # 0 is the stem
    name: str  # module prefixes the stage covers, e.g. "layer1" or "cls_token+pos_embed+patch_embed"
    n_params: int
    frozen: bool


def _matchers(model: nn.Module) -> list[re.Pattern[str]]:
    """The regexes of timm's coarse grouping (a callable matcher has none we can read)."""
    spec = model.group_matcher(coarse=True)
    if not isinstance(spec, dict):
        return []
    out = []
    for value in spec.values():
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [(value, None)]
        out += [re.compile(item[0]) for item in items]
    return out


def param_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names per stage, stem first."""
    try:
        groups = group_parameters(model, model.group_matcher(coarse=True))
        return [groups[k] for k in sorted(groups) if groups[k]]
    except (AttributeError, NotImplementedError):
        # no grouping from timm: every top-level child is a stage, in definition order
        order: dict[str, list[str]] = {}
        for name, _ in model.named_parameters():
            order.setdefault(name.split(".")[0], []).append(name)
        return list(order.values())


def _head_candidates(model: nn.Module) -> dict[str, nn.Module]:
    """Modules with parameters outside every coarse group: where timm puts necks and heads."""
    try:
        matchers = _matchers(model)
    except (AttributeError, NotImplementedError):
        return {}
    if not matchers:
        return {}
    out = {}
    for name, module in model.named_modules():
        own = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
        if name and own and not any(m.match(p) for p in own for m in matchers):
            out[name] = module
    return out


def _called(model: nn.Module, img_size: int, watched: dict[str, nn.Module]) -> set[str]:
    """Which of ``watched`` one ``forward_features`` at ``img_size`` calls (a name is called when
    any module under it is: a ModuleList is iterated, never called itself)."""
    called: set[str] = set()
    hooks = [
        sub.register_forward_pre_hook(lambda *_, n=n: called.add(n))
        for n, m in watched.items()
        for sub in m.modules()
    ]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model.forward_features(torch.zeros(1, 3, img_size, img_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return called


def unused_head_modules(model: nn.Module, img_size: int) -> list[str]:
    """Names of head-side modules with parameters that ``forward_features`` does not call.

    Runs one ``forward_features`` at ``img_size`` with hooks on the candidates,
    which also proves the model accepts that input size.
    """
    candidates = _head_candidates(model)
    called = _called(model, img_size, candidates)
    unused = [n for n in candidates if n not in called]
    # a parent listed with its child: keep only the outermost name
    return [n for n in unused if not any(n.startswith(f"{o}.") for o in unused)]


def head_side_children(model: nn.Module, img_size: int) -> list[str]:
    """Top-level children that ``forward_features`` never calls: where ``forward_head`` finds its
    pooling, pre-logits norm and classifier (``global_pool``, ``head``, ``fc_norm``, ``attn_pool``)."""
    children = {n: m for n, m in model.named_children()}
    called = _called(model, img_size, children)
    return [n for n in children if n not in called]


def drop_modules(model: nn.Module, names: list[str]) -> None:
    for name in names:
        model.set_submodule(name, nn.Identity())


def stage_name(param_names: list[str]) -> str:
    """Readable label of a stage: per top-level module, the prefix its parameters share.

    ``layer1.0.conv1.weight, layer1.1.bn2.bias`` -> ``layer1``; ``blocks.5.*, norm.*`` -> ``blocks.5+norm``.
    """
    by_top: dict[str, list[list[str]]] = {}
    for full in param_names:
        parts = full.split(".")
        module = parts[:-1] or parts  # a root parameter (cls_token) names itself
        by_top.setdefault(module[0], []).append(module)
    labels = []
    for paths in by_top.values():
        common = paths[0]
        for path in paths[1:]:
            n = next((i for i, (a, b) in enumerate(zip(common, path)) if a != b), min(len(common), len(path)))
            common = common[:n]
        # stop at the first indexed part: "layer1" for "layer1.0", "blocks.5" for "blocks.5.attn"
        cut = next((i + 1 for i, part in enumerate(common) if any(c.isdigit() for c in part)), len(common))
        labels.append(".".join(common[:cut]))
    return "+".join(labels[:4]) + (f"+{len(labels) - 4} more" if len(labels) > 4 else "")


def frozen_roots(model: nn.Module) -> list[nn.Module]:
    """Outermost modules whose every parameter is frozen (parameter-free ones follow their parent).

    Putting these in eval mode stops BatchNorm statistics and dropout in the
    frozen part, including parameter-free norms and drop-path layers.
    """
    out: list[nn.Module] = []

    def visit(module: nn.Module, parent_frozen: bool) -> None:
        params = list(module.parameters())
        frozen = all(not p.requires_grad for p in params) if params else parent_frozen
        if frozen:
            out.append(module)
            return
        for child in module.children():
            visit(child, False)

    visit(model, False)
    return out


@dataclass(frozen=True)
class ForwardStep:
    """One call of a timm model's ``forward_features``, in order: ``run`` maps its input to its output;
    ``owns`` says which parameters it reads (names under ``module``, plus the root parameters listed)."""

    module: str
    run: Callable[[Tensor], Tensor]
    roots: tuple[str, ...] = ()

    def owns(self, param: str) -> bool:
        return param.startswith(f"{self.module}.") or param in self.roots


def _children(model: nn.Module, names: list[str]) -> list[ForwardStep]:
    return [ForwardStep(n, model.get_submodule(n)) for n in names]


def _indexed(model: nn.Module, name: str) -> list[str]:
    return [f"{name}.{i}" for i in range(len(model.get_submodule(name)))]


def _vit_steps(model: nn.Module) -> list[ForwardStep]:
    embed = ForwardStep("_pos_embed", model._pos_embed, roots=("cls_token", "reg_token", "pos_embed"))
    return [*_children(model, ["patch_embed"]), embed, *_children(model, ["patch_drop", "norm_pre"]),
            *_children(model, [*_indexed(model, "blocks"), "norm"])]


# The families whose forward_features is a plain chain of calls, written out as timm's source has it
# (timm 1.0): keyed by the class that defines forward_features, so a subclass overriding it is not taken.
_CHAINS: dict[type, Callable[[nn.Module], list[ForwardStep]]] = {
    ResNet: lambda m: _children(m, ["conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"]),
    ConvNeXt: lambda m: _children(m, ["stem", *_indexed(m, "stages"), "norm_pre"]),
    EfficientNet: lambda m: _children(m, ["conv_stem", "bn1", *_indexed(m, "blocks"), "conv_head", "bn2"]),
    MobileNetV3: lambda m: _children(m, ["conv_stem", "bn1", *_indexed(m, "blocks")]),
    VisionTransformer: _vit_steps,
}


def forward_steps(model: nn.Module) -> list[ForwardStep] | None:
    """``forward_features`` of a timm model as the ordered calls it makes, or None for a family not
    written out here (or one running gradient checkpointing, whose forward takes another route).

    The caller still proves a cut: every parameter is owned by a step, and the chain reproduces
    ``forward_features`` on an input (``train/boundary.py``)."""
    family = next((cls for cls in _CHAINS if type(model).forward_features is cls.forward_features), None)
    if family is None or any(getattr(m, "grad_checkpointing", False) for m in model.modules()):
        return None
    return _CHAINS[family](model)


__all__ = [
    "ForwardStep",
    "StageInfo",
    "drop_modules",
    "forward_steps",
    "frozen_roots",
    "head_side_children",
    "param_groups",
    "stage_name",
    "unused_head_modules",
]
