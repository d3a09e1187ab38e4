"""Checks of values against TrialConfig and against each other: hyperparameter ranges,
fixed values, baselines, and which sampler and pruner suit the search.

Values are converted to their TrialConfig types in place (``"1e-3"`` -> 0.001),
so the runner receives exactly what a TrialConfig holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tl_bench.config import TrialConfig
from tl_bench.errors import did_you_mean
from tl_bench.spec.fields import (
    DATASET_FIELDS,
    FIXABLE_FIELDS,
    RUNTIME_FIELDS,
    SEARCHABLE_FIELDS,
    SPACE_FIELDS,
    FieldValueError,
    check_value,
    field_type,
    numeric_kind,
)
from tl_bench.spec.sections import COST_METRICS
from tl_bench.spec.paths import absolute_weights_path
from tl_bench.spec.ranges import CategoricalRange, FloatRange, IntRange
from tl_bench.spec.schema_words import choices_of
from tl_bench.spec.study import StudySpec

_SPACE_LISTS = "backbones, freeze_depth, adaptation, neck, head"


def check_hyper(spec: StudySpec) -> None:
    searchable = f"{_SPACE_LISTS}, " + ", ".join(SEARCHABLE_FIELDS)
    for name, rng in list(spec.space.hyper.items()):
        path = f"space.{name}"
        if name not in SEARCHABLE_FIELDS:
            spec.fail(path, f"{name!r} cannot be searched{_where_instead(name, searchable.split(', '))}", searchable)
        if isinstance(rng, CategoricalRange):
            choices = [_value(spec, name, c, f"{path}[{j}]") for j, c in enumerate(rng.choices)]
            spec.space.hyper[name] = CategoricalRange(choices=choices)  # revalidated: 1 and 1.0 collide now
            continue
        kind = numeric_kind(name)
        if kind is None:
            spec.fail(path, f"{name} is not numeric and cannot take a range", "a list of choices")
        _value(spec, name, rng.low, f"{path}.low")
        _value(spec, name, rng.high, f"{path}.high")
        if kind is int and isinstance(rng, FloatRange):
            spec.fail(path, f"{name} takes integers, the range has a fractional step", "integer low, high and step")
        if kind is float and isinstance(rng, IntRange):
            step = float(rng.step) if "step" in rng.model_fields_set else None
            spec.space.hyper[name] = FloatRange(low=rng.low, high=rng.high, log=rng.log, step=step)


def check_fixed(spec: StudySpec) -> None:
    for name, value in list(spec.fixed.items()):
        path = f"fixed.{name}"
        if name in spec.space.hyper:
            spec.fail(path, f"{name} is also searched under space.{name}", "each field either searched or fixed")
        if name not in FIXABLE_FIELDS:
            hint = _where_instead(name, FIXABLE_FIELDS)
            spec.fail(path, f"{name!r} cannot be fixed{hint}", ", ".join(FIXABLE_FIELDS))
        spec.fixed[name] = _value(spec, name, value, path)


def check_baselines(spec: StudySpec, counts: Mapping[str, int]) -> None:
    """Each baseline names searched fields only, with values inside the space (converted in place)."""
    for i, baseline in enumerate(spec.baselines):
        for name, value in list(baseline.items()):
            path = f"baselines[{i}].{name}"
            if name not in spec.space.searched_names:
                searched = ", ".join(spec.space.searched_names)
                hint = did_you_mean(name, spec.space.searched_names)
                spec.fail(path, f"{name!r} is not searched, so it cannot be enqueued{hint}", searched)
            baseline[name] = _baseline_value(spec, baseline, name, value, counts, path)


def _baseline_value(
    spec: StudySpec, baseline: dict[str, Any], name: str, value: Any, counts: Mapping[str, int], path: str
) -> Any:
    space = spec.space
    backbone = space.backbone(baseline.get("backbone", ""))
    if name == "backbone":
        if backbone is None:
            names = [b.name for b in space.backbones]
            hint = did_you_mean(value, names)
            spec.fail(path, f"backbone {value!r} is not in space.backbones{hint}", ", ".join(names))
        return value
    if name == "weights":
        value = absolute_weights_path(value, spec.source_path.parent) if isinstance(value, str) else value
        allowed = backbone.weights if backbone else sorted({w for b in space.backbones for w in b.weights})
        if value not in allowed:
            owner = backbone.name if backbone else "any backbone"
            spec.fail(path, f"weights {value!r} are not listed for {owner}", ", ".join(allowed))
        return value
    if name == "freeze_depth":
        if not any(type(value) is type(d) and value == d for d in space.freeze_depth):
            depths = ", ".join(map(str, space.freeze_depth))
            spec.fail(path, f"freeze depth {value!r} is not in space.freeze_depth", depths)
        if backbone and value not in (0, "all") and value > counts[backbone.name]:
            n = counts[backbone.name]
            spec.fail(path, f"freeze depth {value} exceeds the {n} stages of {backbone.name}", f"0..{n} or 'all'")
        return value
    if name in ("neck", "head"):
        if value not in getattr(space, name):
            hint = did_you_mean(value, getattr(space, name))
            spec.fail(path, f"{name} {value!r} is not in space.{name}{hint}", ", ".join(getattr(space, name)))
        return value
    rng = space.hyper[name]
    value = _value(spec, name, value, path)
    if not rng.contains(value):
        spec.fail(path, f"{value!r} is outside space.{name}", rng.words())
    return value


def check_tuning(spec: StudySpec) -> None:
    """Sampler, pruner and objective that work together."""
    sampler, pruner, multi = spec.sampler.name, spec.pruner.name, spec.objective.is_multi
    if sampler == "grid":
        for name, rng in spec.space.hyper.items():
            if not isinstance(rng, CategoricalRange):
                others = "a list of values, or sampler tpe, random, gp or qmc"
                spec.fail(f"space.{name}", "the grid sampler needs a list of values, not a range", others)
    if sampler == "nsga2" and not multi:
        costs = f"objective.cost one of {', '.join(COST_METRICS)}, or sampler tpe, random, grid, gp or qmc"
        spec.fail("sampler.name", "nsga2 searches a Pareto front and needs objective.cost", costs)
    if multi and pruner not in ("none", "mo_asha"):
        # Trial.report raises for multi-objective studies, so no Optuna pruner ever gets a value.
        what = f"Optuna's pruners are single-objective and objective.cost is {spec.objective.cost}"
        spec.fail("pruner.name", what, "mo_asha (prunes on accuracy and cost), none, or objective.cost: null")
    if pruner == "mo_asha" and not multi:
        spec.fail("pruner.name", "mo_asha prunes on accuracy and a cost and objective.cost is not set",
                  f"objective.cost one of {', '.join(COST_METRICS)}, or pruner median, successive_halving, hyperband")
    most = max_epochs(spec)
    for key in ("min_resource", "max_resource", "min_epochs"):
        value = getattr(spec.pruner, key, None)
        if isinstance(value, int) and value > most:
            spec.fail(f"pruner.{key}", f"{value} epochs exceeds the most a trial runs ({most})", f"1..{most}")


def max_epochs(spec: StudySpec) -> int:
    """The most epochs any trial of this study can run."""
    rng = spec.space.hyper.get("epochs")
    if isinstance(rng, CategoricalRange):
        return max(int(c) for c in rng.choices)
    if isinstance(rng, (IntRange, FloatRange)):
        return int(rng.high)
    return int(spec.fixed.get("epochs", TrialConfig.__dataclass_fields__["epochs"].default))


def _value(spec: StudySpec, name: str, value: Any, path: str) -> Any:
    try:
        return check_value(name, value)
    except FieldValueError as err:
        hint = did_you_mean(err.value, choices_of(field_type(name))) if isinstance(err.value, str) else ""
        spec.fail(path, f"{err.value!r} is not accepted{hint}", err.accepted)


def _where_instead(name: str, accepted: Iterable[str]) -> str:
    if name in SPACE_FIELDS:
        return f" here: it has its own list ({_SPACE_LISTS})"
    if name in DATASET_FIELDS:
        return ": it is set per dataset under datasets"
    if name in RUNTIME_FIELDS:
        return ": it is a run setting, set it under fixed"
    return did_you_mean(name, accepted)


__all__ = ["check_baselines", "check_fixed", "check_hyper", "check_tuning", "max_epochs"]
