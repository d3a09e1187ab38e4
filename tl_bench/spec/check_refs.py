"""Checks of what a study file names: datasets, backbones, weights, necks, heads, freeze depths.

They ask the registries of tl_bench.models and tl_bench.data (which ask timm
and the file system), so they run after the schema has validated the file's shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from tl_bench.errors import TLBenchError
from tl_bench.spec.parts import DatasetSpec
from tl_bench.spec.paths import WEIGHTS_ACCEPTED, weights_kind
from tl_bench.spec.study import StudySpec

Fail = Callable[[str, str, str], NoReturn]
T = TypeVar("T")
# registry messages end with "; accepted: ...", "; accepted tags: ..." or "; known: ..."
_ACCEPTED = re.compile(r";\s*(?:accepted|known)\b[^:]*:")
_DATASET_FORMS = "digits, shapes, imagefolder:PATH, torchvision:NAME"
_BACKBONE_WORDS = "a timm model name (tl-bench list backbones)"


def check_datasets(spec: StudySpec, fail: Fail) -> None:
    entries = [(f"datasets[{i}]", ds) for i, ds in enumerate(spec.datasets)]
    entries += [(f"pretrain.{name}.dataset", pre.dataset) for name, pre in spec.pretrain.items()]
    for path, ds in entries:
        check_dataset(ds, path, fail)
    keys: dict[str, int] = {}
    for i, ds in enumerate(spec.datasets):
        if ds.key in keys:
            fail(
                f"datasets[{i}].key",
                f"dataset key {ds.key!r} is also the key of datasets[{keys[ds.key]}]",
                "distinct keys: set key: to tell the two apart",
            )
        keys[ds.key or ""] = i


def check_dataset(ds: DatasetSpec, path: str, fail: Fail) -> None:
    """The name is a registry name and every option is one that dataset takes (nothing is loaded)."""
    from tl_bench.data.registry import resolve_name, resolve_options

    info = _ask(resolve_name, ds.name, f"{path}.name", fail, _DATASET_FORMS)[0]
    _ask(lambda options: resolve_options(info, options), ds.options, f"{path}.options", fail,
         ", ".join(info.options) or "no options")


def check_backbones(spec: StudySpec, fail: Fail) -> None:
    from tl_bench.models import check_backbone

    for i, backbone in enumerate(spec.space.backbones):
        _ask(check_backbone, backbone.name, f"space.backbones[{i}].name", fail, _BACKBONE_WORDS)
        for j, weights in enumerate(backbone.weights):
            check_weights(spec, backbone.name, weights, f"space.backbones[{i}].weights[{j}]", fail)


def check_weights(spec: StudySpec, backbone: str, weights: str, path: str, fail: Fail) -> None:
    """One weights choice of one backbone: declared, published by timm, or a readable file."""
    from tl_bench.models.weights import check_hub_tag, read_state_dict

    kind = weights_kind(weights)
    if kind == "scratch":
        return
    if kind == "local":
        name = weights[len("local:"):]
        if name not in spec.pretrain:
            declared = ", ".join(f"local:{n}" for n in spec.pretrain) or "none is declared: add it under pretrain"
            fail(path, f"{weights!r} is not declared under pretrain", declared)
    elif kind in ("pretrained", "timm"):
        _ask(lambda tag: check_hub_tag(backbone, tag), weights.partition(":")[2], path, fail, WEIGHTS_ACCEPTED)
    elif kind == "file":
        _ask(read_state_dict, Path(weights), path, fail, WEIGHTS_ACCEPTED)
    else:
        fail(path, f"unknown weights {weights!r}", WEIGHTS_ACCEPTED)


def check_parts(spec: StudySpec, fail: Fail) -> None:
    from tl_bench.models import HEADS, NECKS

    for field, registry in (("neck", NECKS), ("head", HEADS)):
        for i, name in enumerate(getattr(spec.space, field)):
            if name not in registry:
                fail(f"space.{field}[{i}]", f"unknown {field} {name!r}", ", ".join(sorted(registry)))


def stage_counts(spec: StudySpec) -> dict[str, int]:
    """Stage count of every listed backbone (built once per process by tl_bench.models)."""
    from tl_bench.models import count_stages

    return {b.name: count_stages(b.name) for b in spec.space.backbones}


def check_freeze_depths(spec: StudySpec, counts: Mapping[str, int], fail: Fail) -> None:
    deepest = max(counts.values())
    for i, depth in enumerate(spec.space.freeze_depth):
        if depth != "all" and depth > deepest:
            per_backbone = ", ".join(f"{name} {n}" for name, n in counts.items())
            fail(
                f"space.freeze_depth[{i}]",
                f"freeze depth {depth} exceeds the stage count of every listed backbone ({per_backbone})",
                f"integers 0..{deepest} or 'all'",
            )


def _ask(check: Callable[[Any], T], value: Any, path: str, fail: Fail, fallback: str) -> T:
    """Run a registry check; its error becomes this field's error, keeping its accepted list."""
    try:
        return check(value)
    except TLBenchError as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        what, *accepted = _ACCEPTED.split(message, maxsplit=1)
        fail(path, what.rstrip(" ;"), accepted[0].strip() if accepted else fallback)


__all__ = [
    "check_backbones",
    "check_dataset",
    "check_datasets",
    "check_freeze_depths",
    "check_parts",
    "check_weights",
    "stage_counts",
]
