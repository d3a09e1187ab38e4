"""Serving cost, constraints and the multi-objective pruner in real studies and stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tl_bench.errors import SpecError
from tl_bench.report.leaderboard import leaderboard
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.tracking.model_registry import champion
from tl_bench.tracking.names import FEASIBLE

from .conftest import small_spec

pytestmark = pytest.mark.slow
BAD_LR, GOOD_LR = 1.0e-5, 0.3  # two epochs of a linear probe: near chance, and far above it


def _study(folder: Path, template: Path, **overrides: Any) -> Any:
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "runs" / "mlflow.db").write_bytes(template.read_bytes())
    data: dict[str, Any] = {
        "name": "cost", "space": {"backbones": ["test_resnet"], "freeze_depth": ["all"], "lr": [BAD_LR, GOOD_LR]},
        "sampler": {"name": "grid"}, "budget": {"n_trials": 2}, **overrides,
    }
    spec = load_spec(small_spec(folder, **data))
    run_spec(spec, RunOptions(), quiet=True)
    return spec


def test_a_constraint_that_excludes_the_best_makes_a_feasible_setting_champion(
        tmp_path: Path, mlflow_template: Path) -> None:
    spec = _study(tmp_path, mlflow_template, constraints={"val_acc": "<= 0.3"}, keep_models="best")
    board = leaderboard(spec.tracking_uri, study="cost")
    # one combination, two settings: the row is the feasible one, though the other validates higher
    assert list(board["lr"]) == [BAD_LR] and list(board["feasible"]) == [True]
    assert list(leaderboard(spec.tracking_uri, study="cost", feasible_only=True)["lr"]) == [BAD_LR]
    client = MlflowClient(spec.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("cost").experiment_id], "tags.`tlb.trial` != ''")
    tags = {r.data.params["lr"]: (r.data.tags[FEASIBLE], r.data.metrics["val_acc"]) for r in runs}
    assert tags[str(BAD_LR)][0] == "true" and tags[str(GOOD_LR)][0] == "false" and tags[str(GOOD_LR)][1] > 0.3
    version = champion(spec.tracking_uri, "cost-digits")
    assert version is not None and client.get_run(version.run_id).data.params["lr"] == str(BAD_LR)
    study = optuna.load_study(study_name="cost/digits", storage=spec.storage)
    assert sorted(t.user_attrs["feasible"] for t in study.trials) == [False, True]
    # every complete trial measured what its model costs to serve
    assert (board["latency_ms"] > 0).all() and (board["infer_ips"] > 0).all()


def test_the_multi_objective_pruner_stops_a_dominated_trial(tmp_path: Path, mlflow_template: Path) -> None:
    spec = _study(tmp_path, mlflow_template, objective={"cost": "params_trainable"},
                  pruner={"name": "mo_asha", "min_epochs": 1, "reduction_factor": 2},
                  sampler={"name": "random", "seed": 0}, budget={"n_trials": 2},
                  baselines=[{"lr": GOOD_LR}, {"lr": BAD_LR}])
    study = optuna.load_study(study_name="cost/digits", storage=spec.storage)
    states = {t.params["lr"]: t.state for t in study.trials}
    # same cost (one architecture), lower accuracy at the first rung: dominated, outside the kept half
    assert states == {GOOD_LR: optuna.trial.TrialState.COMPLETE, BAD_LR: optuna.trial.TrialState.PRUNED}
    reason = next(t for t in study.trials if t.params["lr"] == BAD_LR)
    client = MlflowClient(spec.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("cost").experiment_id], "params.lr = '1e-05'")
    assert runs and "rung" in runs[0].data.tags["tlb.pruned_reason"] and reason.state.name == "PRUNED"


@pytest.mark.parametrize(("overrides", "words"), [
    ({"constraints": {"latency_mss": "<= 5"}}, "constraints"),
    ({"pruner": {"name": "mo_asha"}}, "mo_asha prunes on accuracy and a cost and objective.cost is not set"),
    ({"objective": {"cost": "train_time_s"}, "pruner": {"name": "median"}}, "pruners are single-objective"),
])
def test_bad_cost_settings_are_one_line(tmp_path: Path, overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(small_spec(tmp_path, **overrides))
    assert words in str(err.value) and "\n" not in str(err.value)
