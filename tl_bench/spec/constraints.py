"""``constraints:``: bounds a trial's recorded metrics must meet for the trial to count as feasible.

A study file writes one bound per metric::

    constraints:
      latency_ms: "<= 5"        # a comparison: <=, <, >= or >, then a number
      params_total: "<= 5e6"
      val_acc: ">= 0.9"
      peak_mem_mb: 2000         # a bare number bounds the metric on its bad side: at most 2000

``Constraints.values(metrics)`` gives the values Optuna's constrained samplers read (TPE, NSGA-II,
GP: a trial is feasible when every value is <= 0), one per metric; ``feasible(metrics)`` says
whether a trial meets them all. A metric a trial did not record, or recorded as NaN, makes it
infeasible: a trial that could not show it meets a bound does not meet it. Test-split metrics are
refused: a choice made on them would leak the test split into the search.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import core_schema

from tl_bench.errors import SpecError, did_you_mean
from tl_bench.spec.explain import spec_issue

# metric -> (lowest value it takes, highest, the comparison a bare number means: its good side)
CONSTRAINT_METRICS: dict[str, tuple[float, float, str]] = {
    "val_acc": (0.0, 1.0, ">="),
    "val_top5": (0.0, 1.0, ">="),
    "val_loss": (0.0, math.inf, "<="),
    "train_time_s": (0.0, math.inf, "<="),
    "eval_time_s": (0.0, math.inf, "<="),
    "peak_mem_mb": (0.0, math.inf, "<="),
    "params_total": (0.0, math.inf, "<="),
    "params_trainable": (0.0, math.inf, "<="),
    "trainable_fraction": (0.0, 1.0, "<="),
    "flops_fwd_per_image": (0.0, math.inf, "<="),
    "flops_train_per_image": (0.0, math.inf, "<="),
    "train_flops_total": (0.0, math.inf, "<="),
    "train_throughput_ips": (0.0, math.inf, ">="),
    "latency_ms": (0.0, math.inf, "<="),
    "infer_ips": (0.0, math.inf, ">="),
    "adapter_mb": (0.0, math.inf, "<="),
}
OPS = ("<=", "<", ">=", ">")
BOUND_WORDS = "a number, or a comparison such as '<= 5e6': <=, <, >= or > then a number"
METRIC_WORDS = ", ".join(CONSTRAINT_METRICS)
_COMPARISON = re.compile(r"^\s*(<=|>=|<|>)\s*(\S+)\s*$")
# The value of a strict bound met exactly (``< 5`` at 5): the smallest violation there is.
_EXACT_MISS = math.ulp(1.0)


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``, e.g. ``latency_ms <= 5.0``."""

    metric: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        """The bound as a study file writes it: ``<= 5``, ``>= 0.9``, ``<= 5e+06``."""
        return f"{self.op} {format(self.bound, '.12g')}"

    def holds(self, metrics: Mapping[str, Any]) -> bool:
        """Whether ``metrics`` meets this bound (a missing or NaN metric does not)."""
        return self.value(metrics) <= 0.0

    def value(self, metrics: Mapping[str, Any]) -> float:
        """Optuna's constraint value: <= 0 when met, else by how much it is missed relative to the
        bound (so that bounds in different units weigh alike where a sampler adds violations up, as
        NSGA-II does); ``inf`` for a missing or NaN metric."""
        seen = _number(metrics.get(self.metric))
        if seen is None:
            return math.inf
        scale = abs(self.bound) or 1.0
        upper = self.op in ("<=", "<")
        excess = (seen - self.bound if upper else self.bound - seen) / scale
        met = {"<=": seen <= self.bound, "<": seen < self.bound,
               ">=": seen >= self.bound, ">": seen > self.bound}[self.op]
        return min(excess, 0.0) if met else max(excess, _EXACT_MISS)


@dataclass(frozen=True)
class Constraints:
    """A study's constraints, one per metric in the order written; empty when there are none.

    As a pydantic field type (``constraints: Constraints = Field(default_factory=Constraints)``) it
    validates the ``constraints:`` mapping with one-line spec errors and dumps back to that mapping.
    """

    items: tuple[Constraint, ...] = ()

    def __iter__(self) -> Iterator[Constraint]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def metrics(self) -> list[str]:
        """The metrics bounded, in order."""
        return [c.metric for c in self.items]

    def values(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """metric -> Optuna's constraint value (<= 0 feasible), in order: ``trial.set_constraint(k, v)``
        for each, or ``list(...values())`` from a ``constraints_func``."""
        return {c.metric: c.value(metrics) for c in self.items}

    def feasible(self, metrics: Mapping[str, Any]) -> bool:
        """Whether ``metrics`` meets every bound (true when there are none)."""
        return all(c.holds(metrics) for c in self.items)

    def to_dict(self) -> dict[str, str]:
        """metric -> bound text (``{"latency_ms": "<= 5"}``): what a study file writes, and what MLflow logs."""
        return {c.metric: c.text for c in self.items}

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validated, serialization=core_schema.plain_serializer_function_ser_schema(lambda c: c.to_dict()))

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": {"type": ["string", "number"]}}


class _Issue(Exception):
    """What is wrong with one entry (``metric`` None: with the section as a whole)."""

    def __init__(self, metric: str | None, what: str, accepted: str) -> None:
        super().__init__(what)
        self.metric, self.what, self.accepted = metric, what, accepted


def parse_constraints(value: Any, *, source: str | None = None) -> Constraints:
    """The ``constraints:`` section (a mapping metric -> bound, or None) as ``Constraints``.

    Raises ``SpecError`` naming ``source`` and the field (``constraints.latency_ms``): an unknown or
    test-split metric, a bound that is not a number or comparison, or one outside the metric's range.
    """
    try:
        return _parse(value)
    except _Issue as issue:
        field = "constraints" if issue.metric is None else f"constraints.{issue.metric}"
        raise SpecError(issue.what, issue.accepted, source=source, field=field) from None


def _validated(value: Any) -> Constraints:
    """Pydantic's validator: the field path stops at ``constraints``, so the metric leads the message."""
    if isinstance(value, Constraints):
        return value
    try:
        return _parse(value)
    except _Issue as issue:
        raise spec_issue(issue.what if issue.metric is None else f"{issue.metric}: {issue.what}",
                         issue.accepted) from None


def _parse(value: Any) -> Constraints:
    if value is None:
        return Constraints()
    if not isinstance(value, Mapping):
        raise _Issue(None, f"expected a mapping of metric to bound (got {type(value).__name__})",
                     f"a mapping such as {{latency_ms: '<= 5'}} of metrics {METRIC_WORDS}")
    return Constraints(tuple(_entry(metric, raw) for metric, raw in value.items()))


def _entry(metric: Any, raw: Any) -> Constraint:
    name = str(metric)
    if name not in CONSTRAINT_METRICS:
        if name.startswith("test_"):
            raise _Issue(name, "a test-split metric: a choice made on it would leak the test split into the search",
                         f"a validation or cost metric: {METRIC_WORDS}")
        raise _Issue(name, f"unknown metric {name!r}{did_you_mean(name, CONSTRAINT_METRICS)}", METRIC_WORDS)
    low, high, good_side = CONSTRAINT_METRICS[name]
    op, bound = _comparison(name, raw, good_side)
    span = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f"of at least {low:g}"
    if not low <= bound <= high:
        raise _Issue(name, f"bound {bound:g} is outside the range of {name}", f"a bound {span}")
    if (op == "<" and bound == low) or (op == ">" and bound == high):
        raise _Issue(name, f"'{op} {bound:g}' can never hold", f"a bound {span} that some value meets")
    return Constraint(name, op, bound)


def _comparison(metric: str, raw: Any, good_side: str) -> tuple[str, float]:
    """(op, bound) of ``raw``: a bare number takes the metric's good side."""
    if isinstance(raw, bool) or raw is None:
        raise _Issue(metric, f"{raw!r} is not a bound", BOUND_WORDS)
    if isinstance(raw, (int, float)):
        op, number = good_side, raw
    else:
        found = _COMPARISON.match(str(raw))
        text = str(raw).strip()
        if found is None:
            number = _number(text)
            if number is None:
                raise _Issue(metric, f"{text!r} is not a bound", BOUND_WORDS)
            op = good_side
        else:
            op, number = found.group(1), _number(found.group(2))
            if number is None:
                raise _Issue(metric, f"{found.group(2)!r} in {text!r} is not a number", BOUND_WORDS)
    bound = float(number)
    if not math.isfinite(bound):
        raise _Issue(metric, f"bound {bound} is not a finite number", BOUND_WORDS)
    return op, bound


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, or NaN."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


__all__ = [
    "BOUND_WORDS",
    "CONSTRAINT_METRICS",
    "OPS",
    "Constraint",
    "Constraints",
    "parse_constraints",
]
