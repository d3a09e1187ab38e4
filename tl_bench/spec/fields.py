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

from tl_bench.config import DataSettings, TrialConfig

SPACE_FIELDS = ("backbone", "weights", "freeze_depth", "neck", "head")
DATASET_FIELDS = tuple(f.name for f in dataclasses.fields(DataSettings))  # set per dataset under datasets
# Settings of how a trial runs rather than what it is: fixable, never searched.
RUNTIME_FIELDS = ("device", "use_cache")
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
}


def check_value(name: str, value: Any) -> Any:
    """Return ``value`` converted to the TrialConfig field's type, or raise FieldValueError."""
    wants_bool = bool in _members(field_type(name))
    if isinstance(value, bool) != wants_bool and not (value is None and _allows_none(name)):
        # pydantic's lax mode would turn ``true`` into 1 and 1 into ``true``: both are typos here.
        raise FieldValueError(value, describe_field(name))
    try:
        converted = getattr(_ADAPTER.validate_python({**_PLACEHOLDER, name: value}), name)
    except ValidationError:
        raise FieldValueError(value, describe_field(name)) from None
    bound, inclusive = _LOWER_BOUNDS.get(name, (None, True))
    if bound is not None and converted is not None and (converted < bound if inclusive else converted <= bound):
        raise FieldValueError(value, describe_field(name))
    return converted


def describe_field(name: str) -> str:
    """Plain words for the values a TrialConfig field accepts."""
    from tl_bench.spec.schema_words import describe

    words = describe(field_type(name))
    if name in _LOWER_BOUNDS:
        bound, inclusive = _LOWER_BOUNDS[name]
        sign = ">=" if inclusive else ">"
        for kind in ("an integer", "a number"):
            words = words.replace(kind, f"{kind} {sign} {bound:g}")
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
