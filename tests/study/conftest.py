from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


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
