"""Kept trial models in a real MLflow store: logged, loaded as pyfunc, listed, deleted, registered."""

from __future__ import annotations

import io
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from tl_bench.config import TrialConfig
from tl_bench.data.images import decode_bytes
from tl_bench.errors import ModelNotFoundError
from tl_bench.models import InferenceNetwork, build_model_for, save_bundle
from tl_bench.tracking import CHAMPION, MODEL_ID, OPTUNA_STUDY, TRIAL, Tracker
from tl_bench.tracking.loading import load_model, shown_uri
from tl_bench.tracking.logged_models import (
    DECODER_FILE,
    delete_model,
    files_missing,
    find_models,
    kept_models,
    log_trial_model,
)
from tl_bench.tracking.model_registry import champion, register_version, registered_versions, version_problem

CONFIG = TrialConfig(dataset="digits", backbone="test_resnet", img_size=16, freeze_depth="all")
CLASSES = ["zero", "one", "two"]


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.transpose(1, 2, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _log(tracker: Tracker, tmp_path: Path, number: int, seed: int = 0) -> tuple[str, str, InferenceNetwork]:
    parent = tracker.find_parent_run("demo/digits") or tracker.create_parent_run(
        study="demo", dataset="digits", optuna_study="demo/digits")
    run_id = tracker.start_trial(parent, CONFIG, study="demo", dataset="digits", trial_number=number)
    torch.manual_seed(seed)
    model = build_model_for(CONFIG, 3).eval()
    bundle = save_bundle(model, tmp_path / f"bundle{number}", config=CONFIG, class_names=CLASSES,
                         interpolation="bilinear")
    network = InferenceNetwork(model, model.backbone.data_config["mean"], model.backbone.data_config["std"]).eval()
    pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    tags = {OPTUNA_STUDY: "demo/digits", "tlb.study": "demo", "tlb.dataset": "digits", TRIAL: str(number),
            "val_acc": str(0.5 + number / 100)}
    model_id = log_trial_model(tracker.tracking_uri, tracker.experiment_id, run_id, network=network,
                               bundle_dir=bundle, pixels=pixels.numpy(), encoded=[_png(p) for p in pixels.numpy()],
                               tags=tags, params={"backbone": "test_resnet"})
    tracker.finish_trial(run_id, "COMPLETE", config=CONFIG)
    return run_id, model_id, network


def test_a_logged_model_takes_image_files_and_answers_class_names(mlflow_db: str, tmp_path: Path) -> None:
    tracker = Tracker(mlflow_db, "demo")
    run_id, model_id, network = _log(tracker, tmp_path, 0)
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    encoded = [_png(image) for image in images.numpy()]
    pyfunc = load_model(f"runs:/{run_id}/model", mlflow_db)
    out = pyfunc.predict(pd.DataFrame({"image": encoded}))
    with torch.no_grad():
        expected = network(images)
    assert list(out.columns) == ["label", "probability", "probabilities", "classes"]
    assert np.array_equal(np.array(out["probabilities"].tolist(), dtype=np.float32), expected.numpy())
    assert out["label"].tolist() == [CLASSES[i] for i in expected.argmax(1).tolist()]
    assert pyfunc.metadata.metadata["class_names"] == CLASSES
    assert pyfunc.metadata.get_input_schema().input_names() == ["image"]
    # The run lists its model (the MLflow UI's Models column), found as kept for its trial.
    outputs = MlflowClient(mlflow_db).get_run(run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [model_id]
    assert set(kept_models(mlflow_db, tracker.experiment_id, "demo/digits")) == {0}
    assert [m.trial for m in find_models(mlflow_db, dataset="digits")] == [0]
    with pytest.raises(ValueError, match="row 1: not an image"):
        pyfunc.predict(pd.DataFrame({"image": [encoded[0], b"not an image"]}))


def test_the_model_decodes_files_as_the_data_loader_does(tmp_path: Path) -> None:
    decode_image = runpy.run_path(str(DECODER_FILE))["decode_bytes"]  # the file logged with a model, standing alone
    rng = np.random.default_rng(0)
    for fmt, size in (("PNG", (40, 23)), ("JPEG", (64, 64)), ("PNG", (16, 16))):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buffer, format=fmt)
        for interpolation in ("bilinear", "bicubic"):
            data = buffer.getvalue()
            assert torch.equal(decode_image(data, 16, interpolation), decode_bytes(data, 16, interpolation))


def test_deleting_a_model_frees_its_files_and_unkeeps_it(mlflow_db: str, tmp_path: Path) -> None:
    tracker = Tracker(mlflow_db, "demo", artifact_location=(tmp_path / "artifacts").as_uri())
    _, first, _ = _log(tracker, tmp_path, 0)
    _, second, _ = _log(tracker, tmp_path, 1)
    models = tmp_path / "artifacts" / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted([first, second])
    delete_model(mlflow_db, first)
    assert [p.name for p in models.iterdir()] == [second]
    assert set(kept_models(mlflow_db, tracker.experiment_id, "demo/digits")) == {1}
    assert not files_missing(mlflow_db, second)
    (models / second / "artifacts" / "MLmodel").unlink()
    assert files_missing(mlflow_db, second)


def test_registering_twice_adds_no_version_and_champion_follows_the_best(mlflow_db: str, tmp_path: Path) -> None:
    tracker = Tracker(mlflow_db, "demo")
    run0, model0, _ = _log(tracker, tmp_path, 0)
    first = register_version(mlflow_db, "demo-digits", model_id=model0, run_id=run0, tags={TRIAL: "0"})
    again = register_version(mlflow_db, "demo-digits", model_id=model0, run_id=run0, tags={TRIAL: "0"})
    assert (first.version, first.created, first.moved) == ("1", True, True)
    assert (again.version, again.created, again.moved) == ("1", False, False)
    run1, model1, _ = _log(tracker, tmp_path, 1, seed=1)
    better = register_version(mlflow_db, "demo-digits", model_id=model1, run_id=run1, tags={TRIAL: "1"})
    assert (better.version, better.created, better.moved) == ("2", True, True)
    version = champion(mlflow_db, "demo-digits")
    assert version is not None and str(version.version) == "2" and version.tags[MODEL_ID] == model1
    assert CHAMPION in MlflowClient(mlflow_db).get_model_version("demo-digits", "2").aliases
    assert len(registered_versions(mlflow_db, name="demo-digits")) == 2
    loaded = load_model("models:/demo-digits@champion", mlflow_db)
    assert loaded.metadata.model_id == model1
    assert version_problem(mlflow_db, version) is None
    MlflowClient(mlflow_db).delete_run(run1)
    assert "is deleted" in str(version_problem(mlflow_db, version))


def test_a_missing_model_is_one_line_and_credentials_are_not_shown(mlflow_db: str) -> None:
    with pytest.raises(ModelNotFoundError, match="cannot load model 'models:/nothing@champion'.*accepted: models:/"):
        load_model("models:/nothing@champion", mlflow_db)
    assert shown_uri("http://user:secret@host:5000/x") == "http://***@host:5000/x"
    assert shown_uri("sqlite:///a/b.db") == "sqlite:///a/b.db"
