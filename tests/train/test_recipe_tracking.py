"""A trial's recipe and what it recorded reach a real MLflow store: every field a param, compile time a
metric, whether EMA weights were tested a tag."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from tl_bench.config import TrialResult
from tl_bench.tracking.write import Tracker

RECIPE = dict(layer_decay=0.75, drop_path_rate=0.1, mixup=0.8, cutmix=1.0, mixup_prob=0.5, augment="randaug",
              ema_decay=0.999, optimizer="lion", sched="plateau", precision="bf16", channels_last=True, compile=True)


def test_recipe_fields_are_params_and_ema_is_a_tag(mlflow_db: str, make_config) -> None:
    config = make_config(**RECIPE)
    tracker = Tracker(mlflow_db, "recipes")
    parent = tracker.create_parent_run(study="recipes", dataset="digits", optuna_study="recipes/digits")
    run_id = tracker.start_trial(parent, config, study="recipes", dataset="digits", trial_number=0)
    result = TrialResult(val_acc=0.5, test_acc=0.4, ema_tested=True, compile_time_s=12.5)
    tracker.finish_trial(run_id, "COMPLETE", result=result, config=config)
    run = MlflowClient(mlflow_db).get_run(run_id)
    for name, value in RECIPE.items():
        assert run.data.params[name] == str(value), name
    assert run.data.params["decay_epochs"] == "None" and run.data.params["patience_epochs"] == "1"
    assert run.data.tags["tlb.ema_tested"] == "true" and run.data.metrics["compile_time_s"] == 12.5
    assert not {"ema_tested", "cache_hit", "cache_used"} & set(run.data.metrics)
