"""``tl-bench list backbones|necks|heads`` and ``tl-bench inspect``, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tl_bench.cli import app
from tl_bench.errors import FreezeDepthError, ModelBuildError
from tl_bench.models import HEADS, NECKS, build_model, count_params


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tl_bench", *args], capture_output=True, text=True, timeout=300, env=full_env
    )


@pytest.mark.slow  # a fresh interpreter imports torch and timm
def test_inspect_json_reports_counts_flops_and_stages() -> None:
    proc = _run(
        "inspect", "test_resnet", "--neck", "gem", "--head", "cosine", "--freeze-depth", "2",
        "--num-classes", "10", "--img-size", "32", "--json",
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in (
        "params_total", "params_trainable", "params_backbone", "params_neck", "params_head",
        "flops_fwd_per_image", "flops_train_per_image", "n_stages", "freeze_depth",
    ):
        assert key in info, key
    model = build_model("test_resnet", num_classes=10, img_size=32, neck="gem", head="cosine", freeze_depth=2)
    expected = count_params(model)
    assert {k: info[k] for k in expected} == pytest.approx(expected)
    assert info["n_stages"] == 5 and info["freeze_depth"] == 2
    assert [s["frozen"] for s in info["stages"]] == [True, True, False, False, False]
    assert 0 < info["flops_fwd_per_image"] < info["flops_train_per_image"]


@pytest.mark.slow  # a fresh interpreter imports torch and timm
def test_inspect_unknown_backbone_exits_2_with_one_line() -> None:
    proc = _run("inspect", "resnet5O")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "resnet50" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.slow  # a fresh interpreter imports torch and timm
def test_pretrained_weights_without_hub_fail_in_one_line(tmp_path: Path) -> None:
    # an empty cache and an offline hub: what a user without internet sees
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = _run("inspect", "test_resnet", "--img-size", "32", "--weights", "pretrained", env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "test_resnet" in lines[0] and "hub" in lines[0], proc.stderr


runner = CliRunner()


def test_list_necks_and_heads_json() -> None:
    necks = runner.invoke(app, ["list", "necks", "--json"])
    heads = runner.invoke(app, ["list", "heads", "--json"])
    assert necks.exit_code == 0 and heads.exit_code == 0
    assert list(json.loads(necks.stdout)["necks"]) == list(NECKS)
    assert list(json.loads(heads.stdout)["heads"]) == list(HEADS)
    assert all(json.loads(necks.stdout)["necks"].values())  # every entry has a description


def test_list_backbones_filters_by_pattern() -> None:
    result = runner.invoke(app, ["list", "backbones", "test_vi", "--json"])
    names = json.loads(result.stdout)["backbones"]
    assert "test_vit" in names and all("test_vi" in n for n in names)
    plain = runner.invoke(app, ["list", "backbones", "resnet5*"])
    assert "resnet50" in plain.stdout.split() and "test_vit" not in plain.stdout
    tags = runner.invoke(app, ["list", "backbones", "test_resnet", "--pretrained", "--json"])
    assert json.loads(tags.stdout)["backbones"] == ["test_resnet.r160_in1k"]


def test_inspect_table_marks_frozen_stages() -> None:
    args = ["inspect", "test_efficientnet", "--img-size", "32", "--freeze-depth", "all", "--num-classes", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("yes") == 6  # every stage frozen
    assert "trainable fraction" in result.stdout and "forward" in result.stdout


@pytest.mark.parametrize(("text", "frozen"), [(" 2", 2), ("all", 5), ("0", 0)])
def test_inspect_reads_the_freeze_depth_as_text(text: str, frozen: int) -> None:
    result = runner.invoke(app, ["inspect", "test_resnet", "--img-size", "32", "--freeze-depth", text, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["freeze_depth"] == frozen


def test_inspect_refuses_a_freeze_depth_typo_with_the_backbone_range() -> None:
    result = runner.invoke(app, ["inspect", "test_resnet", "--img-size", "32", "--freeze-depth", "half"])
    assert isinstance(result.exception, FreezeDepthError)
    assert str(result.exception) == "freeze depth 'half' is out of range for test_resnet: accepted 0..5 or 'all'"


def test_inspect_shows_what_the_timm_neck_takes_from_the_backbone() -> None:
    base = ["inspect", "test_convnext", "--img-size", "32", "--num-classes", "3", "--freeze-depth", "all", "--json"]
    timm_neck = json.loads(runner.invoke(app, [*base, "--neck", "timm"]).stdout)
    gap = json.loads(runner.invoke(app, [*base, "--neck", "gap"]).stdout)
    assert (timm_neck["neck_takes"], timm_neck["dropped_modules"]) == (["head"], [])
    assert (gap["neck_takes"], gap["dropped_modules"]) == ([], ["head.norm"])
    # the pretrained head norm (64 weights, 64 biases) now counts in the neck, frozen with the backbone
    assert timm_neck["params_neck"] == gap["params_neck"] + 128
    assert timm_neck["params_total"] == gap["params_total"] + 128
    assert timm_neck["params_trainable"] == gap["params_trainable"] == timm_neck["params_head"]
    text = runner.invoke(app, [*base[:-1], "--neck", "timm"]).stdout
    assert "neck timm: timm's ConvNeXt.forward_head(pre_logits=True), with head from the" in " ".join(text.split())


def test_inspect_refuses_the_cls_neck_on_a_backbone_without_a_class_token() -> None:
    result = runner.invoke(app, ["inspect", "test_resnet", "--img-size", "32", "--neck", "cls"])
    assert isinstance(result.exception, ModelBuildError)
    message = str(result.exception)
    assert "\n" not in message and message.startswith("neck 'cls' reads the class token and backbone 'test_resnet'")
    ok = runner.invoke(app, ["inspect", "test_vit", "--img-size", "32", "--neck", "cls", "--json"])
    assert ok.exit_code == 0 and "class token" in json.loads(ok.stdout)["neck_note"]
