"""Shared fixtures: a real, already-migrated MLflow SQLite store copied per test.

Creating an MLflow SQLite store runs its schema migrations (many seconds on
two cores); copying a migrated empty store gives each test a fresh real store
for the cost of a file copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates and migrates the schema
    return path


@pytest.fixture
def mlflow_db(tmp_path: Path, mlflow_template: Path) -> str:
    """Tracking URI of a fresh store at ``tmp_path/runs/mlflow.db``: the default of a spec in ``tmp_path``."""
    target = tmp_path / "runs" / "mlflow.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_template, target)
    return f"sqlite:///{target}"


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each of the two workers trains on one core: two torch thread pools on two
    # cores would spin against each other.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Files with slow tests first (order otherwise kept): the workers take files in this order, so the
    # long ones start early instead of ending the run on one worker.
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
