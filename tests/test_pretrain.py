"""Local pretraining: a real checkpoint, reused while its settings hold, trained once under concurrency."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tl_bench.errors import SpecError, TLBenchError, WeightsError
from tl_bench.models import build_model
from tl_bench.pretrain import (
    checkpoint_metadata,
    checkpoint_path,
    ensure_pretrained,
    pretrain_config,
)
from tl_bench.spec import parse_spec
from tl_bench.tracking import Tracker

SPEC: dict[str, Any] = {
    "name": "pt",
    "datasets": [{"name": "digits", "img_size": 32, "train_size": 100, "val_size": 50}],
    "space": {
        "backbones": [
            {"name": "test_resnet", "weights": ["scratch", "local:shapes"]},
            {"name": "test_vit", "weights": ["local:shapes"]},
        ],
    },
    "budget": {"n_trials": 1},
    "pretrain": {
        "shapes": {
            "dataset": {"name": "shapes", "img_size": 32, "val_size": 24, "options": {"num_classes": 3, "n_per_class": 40}},
            "epochs": 2,
            "lr": 3.0e-3,
            "batch_size": 32,
        }
    },
}


def _spec(folder: Path, **pretrain: Any) -> Any:
    """The test study as if written to ``folder``, with pretraining settings changed."""
    data = copy.deepcopy(SPEC)
    data["pretrain"]["shapes"].update(pretrain)
    return parse_spec(data, source=folder / "pt.yaml")


def _pretrain_runs(tracking_uri: str) -> list[Any]:
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=["pt"], filter_string="tags.`tlb.kind` = 'pretrain'", output_format="list")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """One real pretraining shared by the tests that only read its checkpoint."""
    spec = _spec(tmp_path_factory.mktemp("pretrained"))
    return spec, ensure_pretrained(spec, "shapes", "test_resnet", quiet=True)


def test_checkpoint_loads_as_weights_and_changes_the_features(pretrained: tuple[Any, Path]) -> None:
    spec, path = pretrained
    assert path.parent == spec.checkpoints_dir and path.suffix == ".safetensors"

    meta = checkpoint_metadata(path)
    assert (meta["timm_name"], meta["source_dataset"], meta["source_name"], meta["epochs"]) == (
        "test_resnet", "shapes", "shapes", "2")
    assert meta["source_num_classes"] == "3"
    assert 0.0 <= float(meta["source_test_acc"]) <= 1.0 and float(meta["pretrain_time_s"]) > 0
    assert json.loads(meta["config"])["dataset_options"]["n_per_class"] == 40

    # Same seed as pretraining: the only difference between the two backbones is the training.
    torch.manual_seed(0)
    scratch = build_model("test_resnet", num_classes=10, img_size=32).eval()
    torch.manual_seed(0)
    loaded = build_model("test_resnet", num_classes=10, img_size=32, weights="local:shapes",
                         weights_path=str(path), freeze_depth="all").eval()
    saved = load_file(str(path))
    own = loaded.backbone.model.state_dict()
    assert saved and set(saved) <= set(own)
    assert all(torch.equal(own[k], v) for k, v in saved.items())
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (scratch.extract_feat(x)[-1] - loaded.extract_feat(x)[-1]).abs().max().item()
    assert diff > 1e-3


def test_a_checkpoint_is_reused_until_a_setting_changes(pretrained: tuple[Any, Path]) -> None:
    spec, first = pretrained
    folder = spec.source_path.parent
    stamp = first.stat().st_mtime_ns
    start = time.perf_counter()
    again = ensure_pretrained(_spec(folder), "shapes", "test_resnet", quiet=True)  # a fresh load of the same file
    assert again == first and first.stat().st_mtime_ns == stamp
    assert time.perf_counter() - start < 0.5

    assert checkpoint_path(_spec(folder, epochs=3), "shapes", "test_resnet") != first
    assert checkpoint_path(_spec(folder, lr=1.0e-3), "shapes", "test_resnet") != first
    assert checkpoint_path(spec, "shapes", "test_vit") != first
    options = {"num_classes": 4, "n_per_class": 40}
    changed = _spec(folder, dataset={**SPEC["pretrain"]["shapes"]["dataset"], "options": options})
    assert checkpoint_path(changed, "shapes", "test_resnet") != first
    assert [p.name for p in spec.checkpoints_dir.glob("*.safetensors")] == [first.name]


def test_concurrent_callers_train_once(tmp_path: Path, mlflow_db: str) -> None:
    spec = _spec(tmp_path)
    assert spec.tracking_uri == mlflow_db
    tracker = Tracker(spec.tracking_uri, spec.name)
    barrier = threading.Barrier(2)
    paths: list[Path] = []

    def call() -> None:
        barrier.wait()  # both find no checkpoint: pretraining takes far longer than the check
        paths.append(ensure_pretrained(spec, "shapes", "test_resnet", tracker=tracker, quiet=True))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 2 and paths[0] == paths[1] and paths[0].is_file()
    assert [p.name for p in spec.checkpoints_dir.iterdir() if p.suffix == ".safetensors"] == [paths[0].name]
    assert not [p for p in spec.checkpoints_dir.iterdir() if ".tmp" in p.name]
    (run,) = _pretrain_runs(mlflow_db)
    assert run.data.tags["tlb.checkpoint"] == str(paths[0]) and run.data.tags["tlb.source"] == "shapes"
    assert run.info.status == "FINISHED" and run.data.params["backbone"] == "test_resnet"
    meta = checkpoint_metadata(paths[0])
    assert run.data.metrics["test_acc"] == pytest.approx(float(meta["source_test_acc"]), abs=1e-6)
    assert "pretrain_time_s" in run.data.metrics and "epoch_train_loss" in run.data.metrics
    # Its true times: the run lasts as long as the pretraining did (not the moment its record took).
    took_ms = run.info.end_time - run.info.start_time
    assert abs(took_ms - 1000 * float(meta["pretrain_time_s"])) < 50
    # Nested under the experiment's pretraining run, away from the study's trials.
    parent = mlflow.MlflowClient(mlflow_db).get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["tlb.kind"] == "pretraining" and parent.info.run_name == "pretraining"
    assert parent.info.status == "FINISHED" and parent.info.end_time >= run.info.end_time


def test_pretraining_shows_a_bar_of_its_epochs() -> None:
    import io

    from rich.console import Console

    from tl_bench.pretrain_progress import pretrain_progress

    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    with pretrain_progress(console, "local:shapes test_resnet", 3) as on_epoch:
        for epoch in (1, 2, 3):
            on_epoch(epoch, {"val_acc": 0.25 * epoch, "train_loss": 1.0})
    shown = console.file.getvalue()
    assert "local:shapes test_resnet" in shown and "3/3" in shown and "val_acc 0.750" in shown
    quiet = Console(file=io.StringIO(), quiet=True)
    with pretrain_progress(quiet, "x", 1) as on_epoch:
        on_epoch(1, {"val_acc": 1.0})
    assert quiet.file.getvalue() == ""


@pytest.mark.slow
def test_pretrain_command_trains_each_backbone_once_across_processes(tmp_path: Path, mlflow_db: str) -> None:
    path = tmp_path / "pt.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    cmd = [sys.executable, "-m", "tl_bench", "pretrain", str(path), "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    answers = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert answers[0] == answers[1]
    paths = answers[0]["local:shapes"]
    assert set(paths) == {"test_resnet", "test_vit"}
    checkpoints = sorted(p.name for p in (tmp_path / "runs" / "checkpoints").glob("*.safetensors"))
    assert checkpoints == sorted(Path(p).name for p in paths.values())
    runs = _pretrain_runs(mlflow_db)
    assert sorted(r.data.params["backbone"] for r in runs) == ["test_resnet", "test_vit"]  # once each

    # A second run finds both checkpoints: nothing is trained or recorded again.
    again = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and "pretraining" not in again.stderr
    lines = again.stdout.strip().splitlines()
    for backbone, checkpoint in paths.items():
        acc = float(checkpoint_metadata(checkpoint)["source_test_acc"])
        assert any(backbone in line and f"source test_acc {acc:.3f}" in line and checkpoint in line for line in lines)
    assert len(_pretrain_runs(mlflow_db)) == 2


def test_undeclared_source_and_unreadable_checkpoint_are_named_errors(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    with pytest.raises(SpecError, match="local:imagenet is not declared under pretrain; accepted: local:shapes"):
        pretrain_config(spec, "imagenet", "test_resnet")
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        checkpoint_metadata(bad)


def test_a_diverging_pretraining_names_the_checkpoint_and_leaves_no_file(tmp_path: Path) -> None:
    spec = _spec(tmp_path, lr=1.0e30)
    with pytest.raises(TLBenchError, match=r"^pretraining test_resnet for weights local:shapes failed: loss became"):
        ensure_pretrained(spec, "shapes", "test_resnet", quiet=True)
    assert not list(spec.checkpoints_dir.glob("*.safetensors"))
