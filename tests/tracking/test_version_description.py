"""A registered version says what its model is, and links both ways with its run and its logged model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.study.test_kept_models import write_spec
from tests.tracking.test_models import _log
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.tracking import MODEL_ID, TRIAL, Tracker
from tl_bench.tracking.model_registry import champion, register_version


def test_a_version_is_listed_on_its_logged_model_and_found_from_its_run(mlflow_db: str, tmp_path: Path) -> None:
    run_id, model_id, _ = _log(Tracker(mlflow_db, "demo"), tmp_path, 0)
    for _ in range(2):  # registering again adds no version and no second entry
        register_version(mlflow_db, "demo-digits", model_id=model_id, run_id=run_id, tags={})
    client = MlflowClient(mlflow_db)
    listed = json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"])
    assert listed == [{"name": "demo-digits", "version": "1"}]  # the UI's runs table reads this
    (version,) = client.search_model_versions(f"run_id = '{run_id}'")  # the run page's "Registered models"
    # MLflow's SQL registry keeps no model id of its own: the version's tag names the logged model
    assert (version.run_id, version.tags[MODEL_ID]) == (run_id, model_id)


@pytest.mark.slow  # a real two-trial study
def test_the_champion_version_describes_its_setting_recipe_score_and_seeds(tmp_path: Path, mlflow_template: Path) -> None:
    spec = load_spec(write_spec(
        tmp_path, mlflow_template, baselines=[], sampler={"name": "grid", "seed": 0}, budget={"n_trials": 2},
        space={"backbones": ["test_resnet"], "freeze_depth": ["all"], "lr": [0.3], "seed": [0, 1]},
        fixed={"epochs": 1, "batch_size": 64, "label_smoothing": 0.1}, keep_models={"top_k": 1},
    ))
    run_spec(spec, RunOptions(), quiet=True)
    version = champion(spec.tracking_uri, "keep-digits")
    assert version is not None
    text = version.description
    assert "test_resnet (scratch), freeze all of" in text and "gap neck" in text and "linear head" in text
    assert "lr 0.3" in text and "epochs 1" in text and "batch_size 64" in text and "optimizer adamw" in text
    assert "label_smoothing 0.1" in text  # a field away from its default is part of the recipe
    assert f"val_acc lcb {float(version.tags['setting_val_acc_lcb']):.4f}" in text and "over 2 seeds" in text
    assert "seed 0 (trial" in text and "seed 1 (trial" in text
    client = MlflowClient(spec.tracking_uri)
    model = client.get_logged_model(version.tags[MODEL_ID])
    assert model.name == f"keep-digits-t{version.tags[TRIAL]}"
    assert model.source_run_id == version.run_id and version.run_id in text and model.model_id in text
    assert {"name": "keep-digits", "version": str(version.version)} in json.loads(model.tags["mlflow.modelVersions"])
