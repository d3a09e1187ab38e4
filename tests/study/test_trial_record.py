"""A trial that fails before its config exists still gets an MLflow run: FAILED, with the error and
the values it was sampled with, so that a seed which never trained is counted on the leaderboard."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tl_bench.config import weights_label
from tl_bench.errors import WeightsError
from tl_bench.models import build_model, count_stages, save_backbone_checkpoint
from tl_bench.report import leaderboard
from tl_bench.spec import load_spec
from tl_bench.study import Budget, DatasetStudy, RunEnv
from tl_bench.tracking import Tracker
from tl_bench.train import train_config


def _no_checkpoint(backbone: str, weights: str) -> str | None:
    if weights == "scratch":
        return None
    raise WeightsError(f"no checkpoint for {backbone} with weights {weights}", "scratch")


def test_a_trial_that_fails_building_its_config_has_a_failed_run(make_spec, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A real checkpoint, so the study file is valid; resolving it fails, as a pretraining that
    # crashed in another worker would.
    checkpoint = save_backbone_checkpoint(build_model("test_resnet", num_classes=10, img_size=16),
                                          tmp_path / "resnet.safetensors")
    spec = load_spec(make_spec(
        space={"backbones": [{"name": "test_resnet", "weights": ["scratch", str(checkpoint)]}],
               "freeze_depth": ["all"], "neck": ["gap"], "head": ["linear"], "seed": [0, 1]},
        fixed={"epochs": 1, "batch_size": 64, "lr": 1.0e-2},
        sampler={"name": "grid"},
        budget={"n_trials": 4},
    ))
    tracker = Tracker(spec.tracking_uri, spec.name)
    env = RunEnv(spec, tracker, _no_checkpoint, {"test_resnet": count_stages("test_resnet")}, train_config)
    study = DatasetStudy.open(env, spec.datasets[0])
    study.prepare()
    outcome = study.top_up(Budget(4))
    trials = optuna.load_study(study_name=outcome.study_name, storage=spec.storage_url).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and sum(t.state == TrialState.COMPLETE for t in trials) == 2
    client = MlflowClient(spec.tracking_uri)
    for trial in failed:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])  # each side finds the other
        assert run.info.status == "FAILED" and run.data.tags["tlb.state"] == "FAIL"
        assert run.data.tags["tlb.error"] == trial.user_attrs["error"]
        assert "WeightsError: no checkpoint for test_resnet" in run.data.tags["tlb.error"]
        assert run.data.tags["tlb.trial"] == str(trial.number)
        params = run.data.params
        # a checkpoint shows as its short label; its path is the weights_path param
        assert params["weights"] == weights_label(str(checkpoint)) and params["weights_path"] == str(checkpoint)
        assert params["backbone"] == "test_resnet"
        assert params["dataset"] == "digits" and params["seed"] in ("0", "1") and params["epochs"] == "1"
        assert f"test_resnet-{weights_label(str(checkpoint))}-fall-gap-linear-t" in run.info.run_name
    board = leaderboard(spec.tracking_uri, study=spec.name)
    assert board["weights"].tolist() == ["scratch"]  # nothing finished with the missing checkpoint
    assert board.loc[0, "n_seeds"] == 2 and board.loc[0, "seeds_complete"]


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
