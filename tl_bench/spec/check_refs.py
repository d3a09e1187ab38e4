"""Checks of what a study file names: datasets, backbones, weights, necks, heads, freeze depths.

They ask the registries of tl_bench.models and tl_bench.data (which ask timm
and the file system), so they run after the schema has validated the file's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tl_bench.config import Weights
from tl_bench.errors import TLBenchError, did_you_mean
from tl_bench.spec.sections import DatasetSpec
from tl_bench.spec.paths import WEIGHTS_ACCEPTED
from tl_bench.spec.study import StudySpec

T = TypeVar("T")
_DATASET_FORMS = "digits, shapes, imagefolder:PATH, torchvision:NAME"
_BACKBONE_WORDS = "a timm model name (tl-bench list backbones)"


def check_datasets(spec: StudySpec) -> None:
    entries = [(f"datasets[{i}]", ds) for i, ds in enumerate(spec.datasets)]
    entries += [(f"pretrain.{name}.dataset", pre.dataset) for name, pre in spec.pretrain.items()]
    for path, ds in entries:
        check_dataset(spec, ds, path)
    keys: dict[str, int] = {}
    for i, ds in enumerate(spec.datasets):
        if ds.key in keys:
            spec.fail(
                f"datasets[{i}].key",
                f"dataset key {ds.key!r} is also the key of datasets[{keys[ds.key]}]",
                "distinct keys: set key: to tell the two apart",
            )
        keys[ds.key or ""] = i


def check_dataset(spec: StudySpec, ds: DatasetSpec, path: str) -> None:
    """The name is a registry name and every option is one that dataset takes (nothing is loaded)."""
    from tl_bench.data.catalog import resolve_name, resolve_options

    info = _ask(spec, resolve_name, ds.name, f"{path}.name", _DATASET_FORMS)[0]
    _ask(spec, lambda options: resolve_options(info, options), ds.options, f"{path}.options",
         ", ".join(info.options) or "no options")


def check_backbones(spec: StudySpec) -> None:
    from tl_bench.models import check_backbone

    for i, backbone in enumerate(spec.space.backbones):
        _ask(spec, check_backbone, backbone.name, f"space.backbones[{i}].name", _BACKBONE_WORDS)
        for j, weights in enumerate(backbone.weights):
            check_weights(spec, backbone.name, weights, f"space.backbones[{i}].weights[{j}]")


def check_weights(spec: StudySpec, backbone: str, weights: str, path: str) -> None:
    """One weights choice of one backbone: declared, published by timm, or a readable file."""
    from tl_bench.models.weights import check_hub_tag, read_state_dict

    parsed = Weights.parse(weights)
    if parsed.kind == "scratch":
        return
    if parsed.kind == "local":
        if parsed.name not in spec.pretrain:
            names = [f"local:{n}" for n in spec.pretrain]
            declared = ", ".join(names) or "none is declared: add it under pretrain"
            spec.fail(path, f"{weights!r} is not declared under pretrain{did_you_mean(weights, names)}", declared)
    elif parsed.from_hub:
        _ask(spec, lambda tag: check_hub_tag(backbone, tag), parsed.tag, path, WEIGHTS_ACCEPTED)
    elif parsed.kind == "file":
        _ask(spec, read_state_dict, Path(parsed.path), path, WEIGHTS_ACCEPTED)
    else:
        hint = did_you_mean(weights, ["scratch", "pretrained", *(f"local:{n}" for n in spec.pretrain)])
        spec.fail(path, f"unknown weights {weights!r}{hint}", WEIGHTS_ACCEPTED)


def check_parts(spec: StudySpec) -> None:
    from tl_bench.models import HEADS, NECKS

    for field, registry in (("neck", NECKS), ("head", HEADS)):
        for i, name in enumerate(getattr(spec.space, field)):
            if name not in registry:
                hint = did_you_mean(name, registry)
                spec.fail(f"space.{field}[{i}]", f"unknown {field} {name!r}{hint}", ", ".join(sorted(registry)))
    check_necks_fit(spec)
    check_adaptation(spec)


def check_adaptation(spec: StudySpec) -> None:
    """Adaptation methods apply to frozen stages, and prompts to backbones with tokens."""
    from tl_bench.models import NECKS, backbone_takes_prompts

    for i, method in enumerate(spec.space.adaptation):
        path = f"space.adaptation[{i}]"
        if method != "full" and all(d == 0 for d in spec.space.freeze_depth):
            spec.fail(path, f"adaptation {method!r} applies to the frozen stages and space.freeze_depth freezes none",
                      "a freeze_depth above 0 or 'all' beside it, or adaptation full")
        if method != "prompt":
            continue
        names = [b.name for b in spec.space.backbones]
        if not any(_ask(spec, backbone_takes_prompts, name, "space.backbones", "") for name in names):
            spec.fail(path, f"adaptation 'prompt' needs a ViT-like backbone with tokens and none of {names} has them",
                      "full, bitfit, norm, lora or ia3 for these backbones")
        if all(NECKS[n].scales > 1 or NECKS[n].keeps_head for n in spec.space.neck):
            spec.fail(path, f"adaptation 'prompt' feeds no listed neck ({', '.join(spec.space.neck)}): each reads "
                      "timm's intermediate maps or own pooling", "a neck reading the final tokens (gap, cls, mlp, ...)")


def check_necks_fit(spec: StudySpec) -> None:
    """Every listed neck can read every listed backbone (``cls`` needs a class token)."""
    from tl_bench.models import NECKS, backbone_has_class_token, check_neck_fits

    for i, neck in enumerate(spec.space.neck):
        if not NECKS[neck].needs_class_token:
            continue  # no backbone is built for necks that read any backbone
        for backbone in spec.space.backbones:
            _ask(spec, lambda name: check_neck_fits(neck, name, backbone_has_class_token(name)), backbone.name,
                 f"space.neck[{i}]", "")


def stage_counts(spec: StudySpec) -> dict[str, int]:
    """Stage count of every listed backbone (built once per process by tl_bench.models)."""
    from tl_bench.models import count_stages

    return {b.name: count_stages(b.name) for b in spec.space.backbones}


def check_freeze_depths(spec: StudySpec, counts: Mapping[str, int]) -> None:
    deepest = max(counts.values())
    for i, depth in enumerate(spec.space.freeze_depth):
        if depth != "all" and depth > deepest:
            per_backbone = ", ".join(f"{name} {n}" for name, n in counts.items())
            spec.fail(
                f"space.freeze_depth[{i}]",
                f"freeze depth {depth} exceeds the stage count of every listed backbone ({per_backbone})",
                f"integers 0..{deepest} or 'all'",
            )


def _ask(spec: StudySpec, check: Callable[[Any], T], value: Any, path: str, fallback: str) -> T:
    """Run a registry check; its error becomes this field's error.

    A registry error that says what it accepts lends that to the field; one that
    gives advice instead ("...; use ...") keeps it in its sentence, followed by
    what the field accepts (``fallback``).
    """
    try:
        return check(value)
    except TLBenchError as err:
        if err.lists_accepted:
            spec.fail(path, err.what, err.accepted or fallback)
        spec.fail(path, str(err), fallback)


__all__ = [
    "check_adaptation",
    "check_backbones",
    "check_dataset",
    "check_datasets",
    "check_freeze_depths",
    "check_necks_fit",
    "check_parts",
    "check_weights",
    "stage_counts",
]
