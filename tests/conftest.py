"""Shared fixtures: a real, already-migrated MLflow SQLite store copied per test.

Creating an MLflow SQLite store runs its schema migrations (many seconds on
two cores); copying a migrated empty store gives each test a fresh real store
for the cost of a file copy.
"""

from __future__ import annotations

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
