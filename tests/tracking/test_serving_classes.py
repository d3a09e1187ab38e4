"""A served model says which probability is which class: ``classes`` beside ``probabilities``."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.tracking import MlflowClient

from tests.tracking.test_models import CLASSES, _log, _png
from tl_bench.tracking import Tracker
from tl_bench.tracking.loading import load_model


def test_the_answer_names_the_class_of_every_probability(mlflow_db: str, tmp_path: Path) -> None:
    tracker = Tracker(mlflow_db, "demo")
    run_id, model_id, network = _log(tracker, tmp_path, 3)
    logged = MlflowClient(mlflow_db).get_logged_model(model_id)
    pyfunc = mlflow.pyfunc.load_model(logged.artifact_location)  # MLflow's own loader, no tl-bench
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    out = pyfunc.predict(pd.DataFrame({"image": [_png(image) for image in images.numpy()]}))
    assert list(out.columns) == ["label", "probability", "probabilities", "classes"]
    assert out["classes"].tolist() == [CLASSES, CLASSES]
    with torch.no_grad():
        expected = network(images).numpy()
    for row, probs in zip(out.itertuples(index=False), expected):
        by_class = dict(zip(row.classes, row.probabilities))
        assert by_class[row.label] == max(row.probabilities) == row.probability
        assert np.allclose([by_class[name] for name in CLASSES], probs)
    assert "classes" in pyfunc.metadata.get_output_schema().input_names()


def test_a_trial_model_is_named_for_its_trial_and_runs_model_still_finds_it(mlflow_db: str, tmp_path: Path) -> None:
    tracker = Tracker(mlflow_db, "demo")
    run_id, model_id, _ = _log(tracker, tmp_path, 4)
    assert MlflowClient(mlflow_db).get_logged_model(model_id).name == "demo-digits-t4"
    for reference in (f"runs:/{run_id}/model", f"runs:/{run_id}/demo-digits-t4"):
        assert load_model(reference, mlflow_db).metadata.model_id == model_id
