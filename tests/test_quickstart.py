"""The quickstart study: what it promises, and a reduced copy of it run end to end through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml

from tl_bench.pretrain import checkpoint_path
from tl_bench.spec import load_spec, parse_spec

STUDIES = Path(__file__).resolve().parents[1] / "studies"
QUICKSTART = STUDIES / "quickstart.yaml"


def test_every_backbone_has_a_paired_probe_baseline_and_a_source_unlike_the_target() -> None:
    spec = load_spec(QUICKSTART)
    probes = {(b["backbone"], b["weights"]) for b in spec.baselines if b["freeze_depth"] == "all"}
    for backbone in spec.space.backbones:
        assert {(backbone.name, "scratch"), (backbone.name, "local:shapes")} <= probes
    source = spec.pretrain["shapes"].dataset
    assert source.name == "shapes" and source.name not in {ds.name for ds in spec.datasets}
    assert source.img_size == spec.datasets[0].img_size  # a ViT's position table only fits its own size


def test_the_transfer_grid_reuses_the_quickstart_checkpoints() -> None:
    quick, grid = load_spec(QUICKSTART), load_spec(STUDIES / "transfer_grid.yaml")
    assert {b.name for b in grid.space.backbones} == {b.name for b in quick.space.backbones}
    for backbone in quick.space.backbones:
        assert checkpoint_path(grid, "shapes", backbone.name) == checkpoint_path(quick, "shapes", backbone.name)


def _reduced_quickstart(tmp_path: Path) -> Path:
    """The quickstart with one-epoch trials and a pretraining of a few dozen images."""
    data: dict[str, Any] = yaml.safe_load(QUICKSTART.read_text())
    data["space"]["epochs"] = [1, 2]
    for baseline in data["baselines"]:
        baseline["epochs"] = 1
    pretrain = data["pretrain"]["shapes"]
    pretrain["epochs"] = 1
    pretrain["dataset"]["val_size"] = 24
    pretrain["dataset"]["options"]["n_per_class"] = 20
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    parse_spec(yaml.safe_load(path.read_text()), source=path)  # still a valid study
    return path


@pytest.mark.slow
def test_a_reduced_quickstart_runs_end_to_end(tmp_path: Path, mlflow_db: str) -> None:
    path = _reduced_quickstart(tmp_path)
    env = dict(os.environ, COLUMNS="250")  # one leaderboard row per line
    done = subprocess.run([sys.executable, "-m", "tl_bench", "run", str(path), "--n-trials", "4"],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for backbone in ("test_resnet", "test_convnext", "test_vit"):
        assert f"pretraining {backbone} on shapes (1 epochs) for weights local:shapes" in done.stderr
    out = done.stdout
    # A first run on a fresh folder: no library INFO lines (MLflow creating its tables, Optuna its study).
    assert "Creating initial MLflow database tables" not in done.stderr + out
    assert "A new study created" not in done.stderr + out
    assert "Leaderboard: digits" in out and f"tl-bench ui --spec {path}" in out
    assert f"mlflow ui --backend-store-uri {mlflow_db}" in out
    # The closing lines name the registered winner and the commands that use it.
    assert "Registered model:  quickstart-digits version 1 (alias champion" in out
    assert f"tl-bench predict models:/quickstart-digits@champion IMAGE_OR_FOLDER --spec {path}" in out
    assert f"MLFLOW_TRACKING_URI={mlflow_db} mlflow models serve -m models:/quickstart-digits@champion" in out
    # The first four baselines: the CNN's and the ConvNeXt's probes, pretrained and from scratch.
    rows = [line for line in out.splitlines() if "test_" in line and " all " in line]
    assert {(b, w) for b in ("test_resnet", "test_convnext") for w in ("local:shapes", "scratch")} == {
        (b, w) for line in rows for b in ("test_resnet", "test_convnext") for w in ("local:shapes", "scratch")
        if b in line and f" {w} " in line}

    mlflow.set_tracking_uri(mlflow_db)
    runs = mlflow.search_runs(experiment_names=["quickstart"], output_format="list")
    pretrain = {r.data.params["backbone"]: r for r in runs if r.data.tags["tlb.kind"] == "pretrain"}
    trials = [r for r in runs if r.data.tags["tlb.kind"] == "trial"]
    assert set(pretrain) == {"test_resnet", "test_convnext", "test_vit"}
    for run in pretrain.values():
        assert run.info.status == "FINISHED" and Path(run.data.tags["tlb.checkpoint"]).is_file()
        assert run.data.params["dataset"] == "shapes" and 0.0 <= run.data.metrics["test_acc"] <= 1.0
    assert len(trials) == 4 and all(r.info.status == "FINISHED" for r in trials)
    for run in trials:
        params = run.data.params
        assert params["dataset"] == "digits" and params["freeze_depth"] == "all"
        expected = pretrain[params["backbone"]].data.tags["tlb.checkpoint"] if params["weights"] == "local:shapes" else "None"
        assert params["weights_path"] == expected


@pytest.mark.slow
def test_the_quickstart_source_is_learned(tmp_path: Path) -> None:
    """The ViT, the slowest of the three to learn the source (the CNNs reach about 1.0), pretrained
    exactly as the quickstart says, clearly learns it: transfer from it means something."""
    from tl_bench.pretrain import checkpoint_metadata, ensure_pretrained

    study = tmp_path / "quickstart.yaml"
    study.write_text(QUICKSTART.read_text())
    spec = load_spec(study)
    meta = checkpoint_metadata(ensure_pretrained(spec, "shapes", "test_vit", quiet=True))
    assert meta["source_num_classes"] == "6"
    assert float(meta["source_test_acc"]) >= 0.8 and float(meta["source_val_acc"]) >= 0.8, meta
