"""A small valid study, written to real files, that each test bends one way."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

BASE: dict[str, Any] = {
    "name": "small",
    "description": "two tiny backbones on digits",
    "datasets": [{"name": "digits", "img_size": 32, "train_size": 100, "val_size": 50}],
    "space": {
        "backbones": [
            {"name": "test_resnet", "weights": ["scratch", "local:shapes"]},
            {"name": "test_vit", "weights": ["scratch"]},
        ],
        "freeze_depth": [0, 2, "all"],
        "neck": ["gap", "gem"],
        "head": ["linear", "mlp"],
        "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
        "epochs": [1, 2],
    },
    "fixed": {"batch_size": 32},
    "sampler": {"name": "tpe", "seed": 0},
    "pruner": {"name": "median"},
    "budget": {"n_trials": 4},
    "baselines": [{"backbone": "test_resnet", "weights": "scratch", "freeze_depth": "all"}],
    "pretrain": {"shapes": {"dataset": {"name": "shapes", "options": {"num_classes": 4}}, "epochs": 1}},
}


@pytest.fixture
def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a study (a mapping or raw YAML text) to ``tmp_path/<folder>/<name>``."""

    def write(data: dict[str, Any] | str, name: str = "study.yaml", folder: str = "") -> Path:
        path = tmp_path / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
