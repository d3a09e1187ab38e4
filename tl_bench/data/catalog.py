"""The dataset registry: one string names one dataset everywhere (YAML, MLflow, CSV).

Accepted forms: ``digits``, ``shapes``, ``imagefolder:PATH`` and
``torchvision:NAME``. Each entry lists the options it accepts with their
defaults; ``resolve_name`` and ``resolve_options`` check a name and its options
without loading anything.
"""

from __future__ import annotations

from functools import partial
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tl_bench.data.digits import load_digits_source
from tl_bench.data.imagefolder import load_imagefolder_source
from tl_bench.data.shapes import SHAPES_DEFAULTS, check_shapes_options, load_shapes_source
from tl_bench.data.source import Source
from tl_bench.data.torchvision_sets import (
    TORCHVISION_SETS,
    check_torchvision_options,
    find_torchvision_set,
    load_torchvision_source,
)
from tl_bench.errors import DatasetError, did_you_mean

# Split shares: test carved from datasets without a test split, validation from the training pool.
TEST_FRACTION = {"test_fraction": 0.3}
VAL_FRACTION = {"val_fraction": 0.2}
IN_MEMORY = {"in_memory": None}  # None: hold in memory when it fits; it never changes the data
NOT_FINGERPRINTED = frozenset(IN_MEMORY)


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # registry key: "digits", "imagefolder", "torchvision:CIFAR10", ...
    description: str
    load: Callable[..., Source] = field(repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)  # accepted options and their defaults
    needs_target: bool = False  # written NAME:TARGET (imagefolder:PATH)
    check: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)  # per-dataset option ranges

    @property
    def form(self) -> str:
        return f"{self.name}:PATH" if self.needs_target else self.name


def _torchvision_info(key: str) -> DatasetInfo:
    spec = TORCHVISION_SETS[key]
    carve = TEST_FRACTION if "all" in spec.parts else {}
    splits = "/".join(spec.parts) if "all" not in spec.parts else "no fixed splits"
    return DatasetInfo(
        name=f"torchvision:{key}",
        description=f"torchvision {key} ({splits}); files under the data root, downloaded only when allowed",
        load=load_torchvision_source,
        options={**carve, **VAL_FRACTION, **IN_MEMORY, **spec.options},
        check=partial(check_torchvision_options, key),
    )


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "digits", "scikit-learn 8x8 handwritten digits, 1,797 images, 10 classes, offline",
            load_digits_source, {**TEST_FRACTION, **VAL_FRACTION},
        ),
        DatasetInfo(
            "shapes", "procedural RGB shapes (2-10 classes), offline; the source task for pretraining",
            load_shapes_source, {**SHAPES_DEFAULTS, **TEST_FRACTION, **VAL_FRACTION}, check=check_shapes_options,
        ),
        DatasetInfo(
            "imagefolder", "a folder with one sub-folder per class, or train/ val/ test/ folders of class folders",
            load_imagefolder_source, {**TEST_FRACTION, **VAL_FRACTION, **IN_MEMORY}, needs_target=True,
        ),
        *(_torchvision_info(key) for key in TORCHVISION_SETS),
    ]
}  # fmt: skip


def _accepted_forms() -> str:
    return f"digits, shapes, imagefolder:PATH, torchvision:NAME with NAME one of {', '.join(TORCHVISION_SETS)}"


def resolve_name(name: str) -> tuple[DatasetInfo, str | None]:
    """Registry entry and target (a folder, or a torchvision name) of a dataset name.

    Raises DatasetError when the name is not accepted.
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"dataset name {name!r} is empty", _accepted_forms())
    kind, sep, target = name.partition(":")
    if kind == "torchvision":
        if not target.strip():
            known = ", ".join(TORCHVISION_SETS)
            raise DatasetError(
                "dataset 'torchvision' needs a name", f"torchvision:NAME with NAME one of {known}", lead=": write "
            )
        spec = find_torchvision_set(target)
        return DATASETS[f"torchvision:{spec.name}"], spec.name
    info = DATASETS.get(kind)
    if info is None:
        hint = did_you_mean(kind, ["digits", "shapes", "imagefolder", "torchvision"])
        raise DatasetError(f"unknown dataset {name!r}{hint}", _accepted_forms())
    if info.needs_target and not target.strip():
        raise DatasetError(f"dataset {kind!r} needs a folder", f"{kind}:PATH", lead=": write ")
    if not info.needs_target and sep:
        raise DatasetError(f"dataset {kind!r} takes no ':' part", kind, lead="; write ")
    return info, (target if info.needs_target else None)


def _check_fraction(name: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise DatasetError(
            f"dataset {name} option {key}={value!r} is not accepted", "a number between 0 and 1", lead="; use "
        )


def resolve_options(info: DatasetInfo, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in, each checked: generic ones here, per-dataset ranges by the entry."""
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        accepted = ", ".join(info.options) or "none"
        raise DatasetError(
            f"dataset {info.name} does not accept option {unknown[0]!r}", accepted, lead="; accepted options: "
        )
    resolved = {**info.options, **options}
    for key in ("test_fraction", "val_fraction"):
        if key in resolved:
            _check_fraction(info.name, key, resolved[key])
    if resolved.get("in_memory") not in (None, True, False):
        raise DatasetError(
            f"dataset {info.name} option in_memory={resolved['in_memory']!r} is not accepted",
            "true, false or null",
            lead="; use ",
        )
    if info.check is not None:
        info.check(resolved)
    return resolved


__all__ = [
    "DATASETS",
    "NOT_FINGERPRINTED",
    "DatasetInfo",
    "resolve_name",
    "resolve_options",
]
