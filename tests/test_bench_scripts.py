"""The benchmarks run: each script in bench/ in its ``--smoke`` mode, as a user runs it, ends on one JSON
line with ``benchmark`` and ``ratio``; and the hand-written search of ``bench/time_to_quality.py`` trains
a trial exactly as tl-bench does, so that benchmark compares searches, not training code."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from timm.optim import create_optimizer_v2

from tl_bench.config import DataSettings, TrialConfig
from tl_bench.data import DatasetSplits, load_dataset_for
from tl_bench.models import build_model_for
from tl_bench.train import train_config
from tl_bench.train.optim import build_optimizer

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = ["boundary_cache", "cache", "gpu", "latency", "leaderboard", "loop", "mo_pruning", "study_overhead",
           "time_to_quality", "tracking", "transfer_search", "workers"]
NOT_BENCHMARKS = {"handwritten_search"}  # the baseline time_to_quality runs, not a benchmark of its own
DATA = {"dataset": "digits", "img_size": 32, "train_size": 96, "val_size": 48, "split_seed": 0}


def test_every_script_in_bench_has_a_smoke_run_here() -> None:
    assert sorted(p.stem for p in BENCH.glob("*.py")) == sorted([*SCRIPTS, *NOT_BENCHMARKS])


@pytest.mark.bench  # minutes of CPU for all twelve: run with `-m bench` (bench/README.md), not in the default suite
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_runs_in_its_smoke_mode_and_ends_on_its_json_line(script: str, tmp_path: Path) -> None:
    # every temporary folder a script makes lands in this test's; one thread each, as the test workers run
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict) and result["smoke"] is True
    assert result["benchmark"] and "target" in result
    if script == "gpu" and not torch.cuda.is_available():
        assert result["ratio"] is None and "CUDA" in result["skipped"]
    elif result["ratio"] is None:
        assert result["ratio_reason"]  # a ratio left out says why
    else:
        assert isinstance(result["ratio"], (int, float)) and math.isfinite(result["ratio"]) and result["ratio"] >= 0


def _handwritten() -> ModuleType:
    spec = importlib.util.spec_from_file_location("handwritten_search", BENCH / "handwritten_search.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def vit_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole test_vit state dict whose final norm is far from its initial value: loading must keep it."""
    torch.manual_seed(1)
    state = timm.create_model("test_vit", num_classes=7, img_size=DATA["img_size"]).state_dict()
    state["norm.weight"] = torch.full_like(state["norm.weight"], 3.0)
    path = tmp_path_factory.mktemp("ckpt") / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize(("backbone", "weights", "depth"), [
    ("test_resnet", "scratch", "2"),  # frozen BatchNorm: statistics estimated once, then never moved
    ("test_convnext", "scratch", "0"),  # timm's head.norm: stripped, as tl-bench strips it
    ("test_vit", "checkpoint", "0"),  # a file's norm.* kept, the classifier dropped; pos_embed trains
])
def test_the_hand_written_trial_trains_as_tl_bench_does(
    backbone: str, weights: str, depth: str, vit_checkpoint: Path
) -> None:
    hand = _handwritten()
    label = str(vit_checkpoint) if weights == "checkpoint" else "scratch"
    settings = {"seed": 0, "batch_size": 32, "data": DATA, "classes": 10,
                "candidates": {backbone: {label: label if weights == "checkpoint" else None}}}
    splits: dict[str, DatasetSplits] = {}

    def data_for(interpolation: str) -> DatasetSplits:
        if interpolation not in splits:
            splits[interpolation] = load_dataset_for(DataSettings(**DATA), interpolation=interpolation)
        return splits[interpolation]

    params = {"backbone": backbone, "weights": label, "freeze_depth": depth, "lr": 3.0e-3, "epochs": 2}
    hand_history = hand.fit(settings, params, data_for)
    config = TrialConfig(**DATA, backbone=backbone, weights=label, freeze_depth=int(depth), lr=3.0e-3, epochs=2,
                         batch_size=32, backbone_lr_scale=1.0, weight_decay=1.0e-4, optimizer="adamw",
                         select="best_val")
    ours = train_config(config).history
    # the same initial weights, batches and updates: the same losses and accuracies, up to float rounding
    # (BatchNorm statistics that moved, a fresh norm or a dropped weight each change the loss at 1e-3 or more)
    assert [e["train_loss"] for e in hand_history] == pytest.approx([e["train_loss"] for e in ours], rel=1e-4)
    assert [e["val_acc"] for e in hand_history] == pytest.approx([e["val_acc"] for e in ours], abs=1e-6)

    model = hand.Classifier(backbone, DATA["img_size"], params["weights"] if weights == "checkpoint" else None,
                            depth, 10)
    reference = build_model_for(config, 10)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in reference.parameters() if p.requires_grad)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())

    def undecayed(optimizer: torch.optim.Optimizer) -> int:
        return sum(p.numel() for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"])

    hand_opt = create_optimizer_v2(model, opt="adamw", lr=3.0e-3, weight_decay=1.0e-4)  # as fit() makes it
    assert undecayed(hand_opt) == undecayed(build_optimizer(reference, reference.backbone, config))
    model.train()
    frozen_bn = model.frozen_batchnorms()
    assert all(not m.training for m in frozen_bn) and (backbone != "test_resnet" or frozen_bn)
    if weights == "checkpoint":
        assert torch.equal(model.body.norm.weight, load_file(str(vit_checkpoint))["norm.weight"])
