"""MLflow's system metrics for trial runs: on with CUDA, off on CPU, MLflow's own switch first."""

from __future__ import annotations

import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from tl_bench.tracking.system import SWITCH, system_metrics, system_metrics_wanted


def test_the_default_follows_cuda_and_mlflows_switch_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SWITCH, raising=False)
    assert system_metrics_wanted() == torch.cuda.is_available()
    monkeypatch.setenv(SWITCH, "true")
    assert system_metrics_wanted()
    monkeypatch.setenv(SWITCH, "false")
    assert not system_metrics_wanted()


def test_samples_land_in_the_run_as_system_metrics(mlflow_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    client = MlflowClient(mlflow_db)
    run_id = client.create_run(client.create_experiment("sys")).info.run_id
    with system_metrics(mlflow_db, run_id, enabled=False):
        time.sleep(1.5)
    assert client.get_run(run_id).data.metrics == {}
    with system_metrics(mlflow_db, run_id, enabled=True):
        time.sleep(3.5)
    logged = client.get_run(run_id).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(logged)
