"""Whether a trial meets the study's ``constraints:``, told to Optuna and to the trial's run.

A complete trial's constraint values (``spec.constraints.values``: <= 0 holds) go to Optuna as
its constraints, which the samplers that search under constraints read (TPE, NSGA-II, GP): on
Optuna 5 through ``Trial.set_constraint``, on Optuna 4 through ``constraints_func`` reading the
values stored with the trial. Other samplers (random, grid, QMC) draw as they would without
constraints; the constraint is applied after the fact: the trial is still marked, and the
leaderboard's fronts and the champion leave infeasible trials out. A pruned trial showed no
final metrics, so it counts as infeasible. The verdict is the user attribute ``feasible`` and
the run tag ``tlb.feasible``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tl_bench.study.storage import set_system_attr
from tl_bench.tracking.names import FEASIBLE as FEASIBLE_TAG

FEASIBLE_ATTR = "feasible"
CONSTRAINED_SAMPLERS = ("tpe", "nsga2", "gp")
_VALUES_ATTR = "constraints"  # Optuna 4's system attribute of a trial's constraint values


def record_constraints(trial: optuna.Trial, values: Mapping[str, float]) -> None:
    """Tell Optuna ``values`` (metric -> value, <= 0 holds) before the trial's state is told."""
    clean = {k: (math.inf if math.isnan(v) else float(v)) for k, v in values.items()}
    if hasattr(trial, "set_constraint"):  # Optuna 5
        for key, value in clean.items():
            trial.set_constraint(key, value)
    else:
        set_system_attr(trial, _VALUES_ATTR, list(clean.values()))


def constraints_func(trial: FrozenTrial) -> Sequence[float]:
    """Optuna 4's ``constraints_func``: the values ``record_constraints`` stored with the trial."""
    return list(trial.system_attrs.get(_VALUES_ATTR, ()))


def sampler_options(sampler: str, constrained: bool) -> dict[str, Any]:
    """Extra keyword arguments of a sampler for a constrained study (Optuna 4 only needs any)."""
    if not constrained or sampler not in CONSTRAINED_SAMPLERS or hasattr(optuna.Trial, "set_constraint"):
        return {}
    return {"constraints_func": constraints_func}


def verdict(constraints: Any, metrics: Mapping[str, Any] | None) -> tuple[dict[str, float], bool]:
    """The constraint values of ``metrics`` (None: a trial that showed none, every value infinite)
    and whether they all hold."""
    if metrics is None:
        values = {metric: math.inf for metric in constraints.metrics}
    else:
        values = constraints.values(metrics)
    return values, all(v <= 0 for v in values.values())


def feasibility_marks(feasible: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The Optuna user attribute and the MLflow tag that say it."""
    return {FEASIBLE_ATTR: feasible}, {FEASIBLE_TAG: "true" if feasible else "false"}


def is_feasible(trial: FrozenTrial) -> bool:
    """A trial of an unconstrained study, or one that met its constraints."""
    return trial.user_attrs.get(FEASIBLE_ATTR, True) is not False


__all__ = [
    "CONSTRAINED_SAMPLERS",
    "FEASIBLE_ATTR",
    "FEASIBLE_TAG",
    "constraints_func",
    "feasibility_marks",
    "is_feasible",
    "record_constraints",
    "sampler_options",
    "verdict",
]
