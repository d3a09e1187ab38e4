"""Which TrialConfig fields a study file may search or fix, and how their values are checked.

The search space names five fields through dedicated lists (backbones with
their weights, freeze depths, necks, heads); the datasets section supplies the
data fields. Every other TrialConfig field may be searched under ``space`` or
pinned under ``fixed``, with values checked against TrialConfig's own types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from typing import Any, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from tl_bench.config import LEGACY_VALUES, DataSettings, TrialConfig

SPACE_FIELDS = ("backbone", "weights", "freeze_depth", "adaptation", "neck", "head")
DATASET_FIELDS = tuple(f.name for f in dataclasses.fields(DataSettings))  # set per dataset under datasets
# Settings of how a trial runs rather than what it is: fixable, never searched.
RUNTIME_FIELDS = ("device", "use_cache", "boundary_cache_mb", "latency_device", "latency_threads",
                  "latency_batch_sizes")
# Filled in by the runner from the weights choice, never written by users.
_RESOLVED_FIELDS = ("weights_path",)

ALL_FIELDS = tuple(f.name for f in dataclasses.fields(TrialConfig))
SEARCHABLE_FIELDS = tuple(
    name
    for name in ALL_FIELDS
    if name not in SPACE_FIELDS + DATASET_FIELDS + RUNTIME_FIELDS + _RESOLVED_FIELDS
)
FIXABLE_FIELDS = SEARCHABLE_FIELDS + RUNTIME_FIELDS

_ADAPTER = TypeAdapter(TrialConfig)
_PLACEHOLDER = {"dataset": "-", "backbone": "-"}


@lru_cache(maxsize=None)
def field_type(name: str) -> Any:
    """The annotation of a TrialConfig field, resolved (``float | None``, ``Literal[...]``, ...)."""
    return typing.get_type_hints(TrialConfig)[name]


def numeric_kind(name: str) -> type | None:
    """``int`` or ``float`` when the field holds a number (None allowed), else None."""
    members = [t for t in _members(field_type(name)) if t is not type(None)]
    if members == [int]:
        return int
    if members == [float]:
        return float
    return None


class FieldValueError(ValueError):
    """A value a TrialConfig field does not take; ``accepted`` says what it takes."""

    def __init__(self, value: Any, accepted: str) -> None:
        self.value, self.accepted = value, accepted
        super().__init__(f"{value!r} is not accepted; accepted: {accepted}")


# Lower bounds TrialConfig's types cannot express: (bound, inclusive).
_LOWER_BOUNDS: dict[str, tuple[float, bool]] = {
    "lr": (0, False),
    "backbone_lr_scale": (0, True),
    "weight_decay": (0, True),
    "momentum": (0, True),
    "epochs": (1, True),
    "warmup_epochs": (0, True),
    "batch_size": (1, True),
    "label_smoothing": (0, True),
    "grad_clip": (0, False),
    "neck_dim": (1, True),
    "head_hidden": (1, True),
    "layer_decay": (0, False),
    "decay_rate": (0, False),
    "decay_epochs": (0, False),
    "patience_epochs": (0, True),
    "drop_path_rate": (0, True),
    "mixup": (0, True),
    "cutmix": (0, True),
    "mixup_prob": (0, True),
    "ema_decay": (0, False),
    "lora_r": (1, True),
    "lora_alpha": (0, False),
    "lora_dropout": (0, True),
    "prompt_tokens": (1, True),
}
# Upper bounds, likewise: (bound, inclusive).
_UPPER_BOUNDS: dict[str, tuple[float, bool]] = {
    "layer_decay": (1, True),
    "decay_rate": (1, True),
    "drop_path_rate": (1, False),
    "mixup_prob": (1, True),
    "ema_decay": (1, False),
    "lora_dropout": (1, False),
}


def check_value(name: str, value: Any) -> Any:
    """Return ``value`` converted to the TrialConfig field's type, or raise FieldValueError."""
    if isinstance(value, bool) and value in LEGACY_VALUES.get(name, {}):
        value = LEGACY_VALUES[name][value]
    members = _members(field_type(name))
    wants_bool = bool in members
    only_bool = all(m in (bool, type(None)) for m in members)
    # pydantic's lax mode would turn ``true`` into 1 and 1 into ``true``: both are typos here.
    if isinstance(value, bool) and not wants_bool:
        raise FieldValueError(value, describe_field(name))
    if wants_bool and not isinstance(value, bool) and (only_bool or isinstance(value, (int, float))):
        if not (value is None and _allows_none(name)):
            raise FieldValueError(value, describe_field(name))
    try:
        converted = getattr(_ADAPTER.validate_python({**_PLACEHOLDER, name: value}), name)
    except ValidationError:
        raise FieldValueError(value, describe_field(name)) from None
    bound, inclusive = _LOWER_BOUNDS.get(name, (None, True))
    if bound is not None and converted is not None and (converted < bound if inclusive else converted <= bound):
        raise FieldValueError(value, describe_field(name))
    bound, inclusive = _UPPER_BOUNDS.get(name, (None, True))
    if bound is not None and converted is not None and (converted > bound if inclusive else converted >= bound):
        raise FieldValueError(value, describe_field(name))
    return converted


def describe_field(name: str) -> str:
    """Plain words for the values a TrialConfig field accepts."""
    from tl_bench.spec.schema_words import describe

    words = describe(field_type(name))
    limits = []
    for bounds, signs in ((_LOWER_BOUNDS, (">=", ">")), (_UPPER_BOUNDS, ("<=", "<"))):
        if name in bounds:
            bound, inclusive = bounds[name]
            limits.append(f"{signs[0] if inclusive else signs[1]} {bound:g}")
    if limits:
        for kind in ("an integer", "a number"):
            words = words.replace(kind, f"{kind} {' and '.join(limits)}")
    legacy = LEGACY_VALUES.get(name, {})
    if legacy:
        words += " (" + ", ".join(f"{str(k).lower()} = {v}" for k, v in legacy.items()) + ")"
    return words


def _allows_none(name: str) -> bool:
    return type(None) in _members(field_type(name))


def _members(tp: Any) -> tuple[Any, ...]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return get_args(tp)
    return (tp,)


__all__ = [
    "ALL_FIELDS",
    "DATASET_FIELDS",
    "FIXABLE_FIELDS",
    "FieldValueError",
    "RUNTIME_FIELDS",
    "SEARCHABLE_FIELDS",
    "SPACE_FIELDS",
    "check_value",
    "describe_field",
    "field_type",
    "numeric_kind",
]
