"""`tl-bench screen` of a checkpoint file deep in the file system: its short label names the metrics, the
table and the ranking, its path is a param, and the screening run ends whatever happens while it is written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import timm
import yaml
from mlflow.tracking import MlflowClient
from safetensors.torch import save_file

from tl_bench.cli.app import main
from tl_bench.config import weights_label
from tl_bench.errors import StorageError
from tl_bench.screen import Candidate, record_screening
from tl_bench.spec import load_spec
from tl_bench.tracking import Tracker


@pytest.fixture
def spec_path(tmp_path: Path, mlflow_db: str) -> Path:
    checkpoint = tmp_path / "checkpoints from" / "a long+odd folder name" / "backbone" / "my weights.safetensors"
    checkpoint.parent.mkdir(parents=True)
    state = timm.create_model("test_resnet", num_classes=0).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(checkpoint))
    data = {"name": "scr", "datasets": [{"name": "digits", "img_size": 16, "train_size": 100, "val_size": 50}],
            "space": {"backbones": [{"name": "test_resnet", "weights": [str(checkpoint)]}],
                      "freeze_depth": ["all"], "neck": ["gap"], "head": ["linear"]},
            "fixed": {"epochs": 1, "batch_size": 64}, "budget": {"n_trials": 1}}
    path = tmp_path / "scr.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _screen_runs(tracking_uri: str) -> list:  # type: ignore[type-arg]
    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, "tags.`tlb.kind` = 'screen'")


def test_screen_names_a_checkpoint_by_its_label_and_keeps_its_path(spec_path: Path, mlflow_db: str,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    spec = load_spec(spec_path)
    path = spec.space.backbones[0].weights[0]
    label = weights_label(path)
    with pytest.raises(SystemExit) as ended:
        main(["screen", str(spec_path)])
    out = capsys.readouterr()
    assert ended.value.code == 0, out.err
    assert label in out.out and path not in out.out
    (run,) = _screen_runs(mlflow_db)
    assert run.info.status == "FINISHED"
    assert {f"{name}/test_resnet/{label}" for name in ("logme", "knn", "params", "flops")} == set(run.data.metrics)
    assert run.data.params["weights_path/" + label] == path
    assert run.data.params["kept"] == f"test_resnet|{label}"


def test_a_screening_run_whose_write_fails_ends_failed_with_no_rerun_advice(spec_path: Path, mlflow_db: str) -> None:
    spec = load_spec(spec_path)
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location)
    refused = Candidate("test//resnet", "scratch", logme=0.1, knn=0.5, seconds=1.0, rank=1)  # MLflow refuses "//"
    with pytest.raises(StorageError) as raised:
        record_screening(tracker, spec, spec.datasets[0], [refused], score="knn", keep=None,
                         start_ms=int(time.time() * 1000))
    assert "refused a value" in str(raised.value) and "run the same command again" not in str(raised.value)
    (run,) = _screen_runs(mlflow_db)
    assert run.info.status == "FAILED"  # not RUNNING for ever
