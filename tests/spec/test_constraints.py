"""``constraints:``: bounds on recorded metrics, parsed with one-line errors, turned into Optuna's
constraint values (<= 0 feasible) and a feasibility check."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tl_bench.config import TrialResult
from tl_bench.errors import SpecError
from tl_bench.spec.constraints import CONSTRAINT_METRICS, Constraint, Constraints, parse_constraints
from tl_bench.spec.explain import explain_validation_error

STUDY_TEXT = """
constraints:
  latency_ms: <= 5
  params_total: "<= 5e6"
  peak_mem_mb: 2000
  val_acc: ">=0.9"
  infer_ips: 100
  train_time_s: < 60.5
"""


def _parsed() -> Constraints:
    return parse_constraints(yaml.safe_load(STUDY_TEXT)["constraints"], source="study.yaml")


def test_a_study_files_bounds_parse_in_order_with_their_comparison() -> None:
    parsed = _parsed()
    assert list(parsed) == [
        Constraint("latency_ms", "<=", 5.0),
        Constraint("params_total", "<=", 5e6),
        Constraint("peak_mem_mb", "<=", 2000.0),  # a bare number bounds a cost from above
        Constraint("val_acc", ">=", 0.9),
        Constraint("infer_ips", ">=", 100.0),  # and a throughput from below
        Constraint("train_time_s", "<", 60.5),
    ]
    assert parsed.metrics == ["latency_ms", "params_total", "peak_mem_mb", "val_acc", "infer_ips", "train_time_s"]
    assert parsed.to_dict()["params_total"] == "<= 5000000"
    # what it writes back reads back the same
    assert parse_constraints(parsed.to_dict()) == parsed
    assert parse_constraints(None) == Constraints() and len(parse_constraints({})) == 0


def test_accepted_metrics_are_recorded_fields_and_never_test_split_ones() -> None:
    recorded = set(TrialResult(val_acc=0.0, test_acc=0.0, val_loss=0.0, val_top5=0.0).metrics())
    added_with_the_feature = {"latency_ms", "infer_ips", "adapter_mb"}
    assert set(CONSTRAINT_METRICS) - added_with_the_feature <= recorded
    assert not [m for m in CONSTRAINT_METRICS if m.startswith("test_")]


@pytest.mark.parametrize(("value", "field", "what", "accepted"), [
    ({"latncy_ms": "<= 5"}, "constraints.latncy_ms", "unknown metric 'latncy_ms' (did you mean 'latency_ms'?)",
     "val_acc, val_top5"),
    ({"test_acc": ">= 0.9"}, "constraints.test_acc", "test-split metric", "a validation or cost metric"),
    ({"latency_ms": "== 5"}, "constraints.latency_ms", "'== 5' is not a bound", "<=, <, >= or >"),
    ({"latency_ms": "<= five"}, "constraints.latency_ms", "'five' in '<= five' is not a number", "<=, <, >= or >"),
    ({"latency_ms": "<= nan"}, "constraints.latency_ms", "'nan' in '<= nan' is not a number", "<=, <, >= or >"),
    ({"latency_ms": "<= inf"}, "constraints.latency_ms", "bound inf is not a finite number", "<=, <, >= or >"),
    ({"latency_ms": True}, "constraints.latency_ms", "True is not a bound", "a number"),
    ({"latency_ms": None}, "constraints.latency_ms", "None is not a bound", "a number"),
    ({"val_acc": ">= 1.5"}, "constraints.val_acc", "bound 1.5 is outside the range of val_acc", "a bound in [0, 1]"),
    ({"peak_mem_mb": "<= -1"}, "constraints.peak_mem_mb", "bound -1 is outside the range of peak_mem_mb",
     "a bound of at least 0"),
    ({"val_acc": "> 1"}, "constraints.val_acc", "'> 1' can never hold", "that some value meets"),
    ({"latency_ms": "< 0"}, "constraints.latency_ms", "'< 0' can never hold", "that some value meets"),
    (["latency_ms <= 5"], "constraints", "expected a mapping of metric to bound (got list)", "latency_ms"),
])
def test_a_bad_entry_is_one_line_naming_the_field_and_what_is_accepted(
    value: Any, field: str, what: str, accepted: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_constraints(value, source="study.yaml")
    err = raised.value
    assert err.field == field and what in err.what and accepted in err.accepted
    assert str(err).startswith(f"study.yaml: {field}: ") and "\n" not in str(err)


class _Study(BaseModel):
    """A section holding the field as a study file's model would."""

    model_config = ConfigDict(extra="forbid")
    constraints: Constraints = Field(default_factory=Constraints)


def test_as_a_pydantic_field_it_validates_dumps_and_reports_as_a_spec_issue() -> None:
    study = _Study.model_validate(yaml.safe_load(STUDY_TEXT))
    assert study.constraints == _parsed()
    assert study.model_dump(mode="json")["constraints"]["latency_ms"] == "<= 5"
    assert _Study.model_validate(study.model_dump(mode="json")) == study
    assert _Study().constraints == Constraints()
    with pytest.raises(ValidationError) as raised:
        _Study.model_validate({"constraints": {"val_acc": ">= 2"}})
    field, what, accepted = explain_validation_error(raised.value, _Study)
    assert (field, what, accepted) == ("constraints", "val_acc: bound 2 is outside the range of val_acc",
                                       "a bound in [0, 1]")


@pytest.mark.parametrize(("constraint", "seen", "value"), [
    (Constraint("latency_ms", "<=", 5.0), 4.0, -0.2),  # met by a fifth of the bound
    (Constraint("latency_ms", "<=", 5.0), 5.0, 0.0),
    (Constraint("latency_ms", "<=", 5.0), 7.5, 0.5),  # missed by half the bound
    (Constraint("val_acc", ">=", 0.8), 0.9, -0.125),
    (Constraint("val_acc", ">=", 0.8), 0.6, 0.25),
    (Constraint("peak_mem_mb", "<=", 0.0), 3.0, 3.0),  # a zero bound: absolute
])
def test_values_are_relative_to_the_bound_and_feasible_at_or_below_zero(
    constraint: Constraint, seen: float, value: float
) -> None:
    assert constraint.value({constraint.metric: seen}) == pytest.approx(value)
    assert constraint.holds({constraint.metric: seen}) == (value <= 0)


@pytest.mark.parametrize("op", ["<", ">"])
def test_a_strict_bound_met_exactly_is_missed_by_the_least_amount(op: str) -> None:
    constraint = Constraint("latency_ms", op, 5.0)
    assert 0 < constraint.value({"latency_ms": 5.0}) < 1e-12
    assert not constraint.holds({"latency_ms": 5.0})
    inside = 4.0 if op == "<" else 6.0
    assert constraint.value({"latency_ms": inside}) < 0 and constraint.holds({"latency_ms": inside})


@pytest.mark.parametrize("metrics", [{}, {"latency_ms": float("nan")}, {"latency_ms": None}])
def test_a_missing_or_nan_metric_is_infeasible(metrics: dict[str, Any]) -> None:
    constraints = parse_constraints({"latency_ms": "<= 5", "val_acc": ">= 0.5"})
    values = constraints.values({**metrics, "val_acc": 0.9})
    assert values["latency_ms"] == math.inf and values["val_acc"] < 0
    assert not constraints.feasible({**metrics, "val_acc": 0.9})


def test_feasible_needs_every_bound_and_holds_without_any() -> None:
    constraints = _parsed()
    good = {"latency_ms": 4.0, "params_total": 1e6, "peak_mem_mb": 100.0, "val_acc": 0.95, "infer_ips": 500.0,
            "train_time_s": 10.0}
    assert constraints.feasible(good)
    assert list(constraints.values(good)) == constraints.metrics and max(constraints.values(good).values()) <= 0
    for metric, bad in (("latency_ms", 6.0), ("val_acc", 0.5), ("infer_ips", 50.0), ("train_time_s", 60.5)):
        assert not constraints.feasible({**good, metric: bad})
        assert constraints.values({**good, metric: bad})[metric] > 0
    assert Constraints().feasible({}) and Constraints().values({}) == {}


@pytest.mark.skipif(not hasattr(optuna.trial.Trial, "set_constraint"), reason="Trial.set_constraint is Optuna 5's")
def test_optuna_keeps_infeasible_trials_off_the_front(tmp_path: Path) -> None:
    constraints = parse_constraints({"latency_ms": "<= 5", "params_total": "<= 5e6"})
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=0))
    trials = [  # (val_acc, train_time_s, latency_ms, params_total)
        (0.99, 1.0, 9.0, 1e6),  # dominates every other trial, but too slow to serve
        (0.90, 5.0, 4.0, 1e6),
        (0.80, 2.0, 3.0, 2e6),
        (0.95, 3.0, 2.0, 9e6),  # too large
        (0.70, 9.0, 1.0, 1e6),  # feasible, dominated
    ]
    for acc, cost, latency, params in trials:
        trial = study.ask()
        for metric, value in constraints.values({"latency_ms": latency, "params_total": params}).items():
            trial.set_constraint(metric, value)
        study.tell(trial, [acc, cost])
    stored = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sorted(t.values[0] for t in stored.best_trials) == [0.8, 0.9]
    assert stored.trials[0].constraints["latency_ms"] == pytest.approx(0.8)
