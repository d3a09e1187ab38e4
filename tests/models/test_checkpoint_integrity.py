"""A checkpoint records the digest of its tensors when written; a truncated or damaged one is refused in
one line naming the file, before any trial starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from tl_bench.config import TrialConfig
from tl_bench.errors import WeightsError
from tl_bench.models import build_model_for, save_backbone_checkpoint, verify_checkpoint
from tl_bench.pretrain import checkpoint_path
from tl_bench.spec import parse_spec

CONFIG = TrialConfig(dataset="digits", backbone="test_resnet", img_size=16)


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_model_for(CONFIG, 3)


def _flip_last_bytes(path: Path, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[-n:] = bytes(255 - b for b in data[-n:])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_whole_checkpoint_passes_and_a_damaged_one_is_refused(model, tmp_path: Path, suffix: str) -> None:
    path = save_backbone_checkpoint(model, tmp_path / f"backbone{suffix}")
    verify_checkpoint(path)
    if suffix == ".safetensors":  # the bytes of the last tensor change, the file still parses
        _flip_last_bytes(path)
    else:  # a torch zip whose entries are read back as they are
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(WeightsError, match=f"checkpoint '{path}' is damaged") as caught:
        verify_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_a_truncated_checkpoint_is_refused_naming_the_file(model, tmp_path: Path) -> None:
    path = save_backbone_checkpoint(model, tmp_path / "backbone.safetensors")
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(WeightsError, match=r"checkpoint '.*backbone\.safetensors' is damaged \(SafetensorError"):
        verify_checkpoint(path)


@pytest.mark.slow
def test_run_refuses_a_truncated_local_checkpoint_before_any_trial(model, tmp_path: Path, mlflow_db: str) -> None:
    data = {
        "name": "damaged",
        "datasets": [{"name": "digits", "img_size": 16, "train_size": 100, "val_size": 50}],
        "space": {"backbones": [{"name": "test_resnet", "weights": ["local:shapes"]}], "freeze_depth": ["all"]},
        "fixed": {"epochs": 1},
        "budget": {"n_trials": 2},
        "pretrain": {"shapes": {"dataset": {"name": "shapes", "img_size": 16, "options": {"num_classes": 3}},
                                "epochs": 1}},
    }
    spec_file = tmp_path / "damaged.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    # the checkpoint the study would pretrain, already there (as a previous run left it) but cut short
    path = checkpoint_path(parse_spec(data, source=spec_file), "shapes", "test_resnet")
    save_backbone_checkpoint(model, path)
    path.write_bytes(path.read_bytes()[:-1000])
    done = subprocess.run([sys.executable, "-m", "tl_bench", "run", str(spec_file)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"checkpoint '{path}' is damaged" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    storage = tmp_path / "runs" / "optuna.db"
    trials = [s.n_trials for s in optuna.get_all_study_summaries(f"sqlite:///{storage}")] if storage.exists() else []
    assert sum(trials) == 0  # refused before the first trial
