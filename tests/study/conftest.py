from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from PIL import Image

from tl_bench.data import load_dataset_for
from tl_bench.spec import StudySpec
from tl_bench.tracking.loading import load_model


def served_test_accuracy(spec: StudySpec, model_uri: str) -> float:
    """Test accuracy of a logged model as its pyfunc serves it: the study's test images as PNG files."""
    pyfunc = load_model(model_uri, spec.tracking_uri)
    preprocessing = pyfunc.metadata.metadata["preprocessing"]
    data = load_dataset_for(spec.datasets[0].data_settings, interpolation=preprocessing["interpolation"])
    files = []
    for image in data.test.images:
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    predicted = pyfunc.predict(pd.DataFrame({"image": files}))["label"]
    truth = [data.class_names[i] for i in data.test.labels.tolist()]
    return sum(p == t for p, t in zip(predicted, truth)) / len(truth)


def small_spec(tmp_path: Path, **overrides: Any) -> Path:
    """A tiny study on digits that trains in seconds; returns the written YAML path."""
    data: dict[str, Any] = {
        "name": "small",
        "datasets": [{"name": "digits", "img_size": 16, "train_size": 200, "val_size": 100}],
        "space": {
            "backbones": ["test_resnet"],
            "freeze_depth": [0, "all"],
            "neck": ["gap", "gem"],
            "head": ["linear", "cosine"],
            "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
        },
        "fixed": {"epochs": 2, "batch_size": 64},
        "sampler": {"name": "random", "seed": 0},
        "budget": {"n_trials": 3},
    }
    data.update(overrides)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def make_spec(tmp_path: Path, mlflow_db: str):  # type: ignore[no-untyped-def]
    """Factory: ``make_spec(**overrides)`` writes a small study file and returns its path."""
    return lambda **overrides: small_spec(tmp_path, **overrides)
