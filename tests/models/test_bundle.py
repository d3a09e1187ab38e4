"""Trained models as model.safetensors + config.json, rebuilt without MLflow, and the inference network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tl_bench.config import TrialConfig
from tl_bench.data import load_dataset
from tl_bench.errors import WeightsError
from tl_bench.models import InferenceNetwork, build_model_for, load_bundle, save_bundle
from tl_bench.train.batches import ImageFeeder


def _trained(neck: str = "gem", head: str = "mlp") -> tuple[TrialConfig, torch.nn.Module]:
    config = TrialConfig(dataset="digits", backbone="test_convnext", img_size=32, freeze_depth=1, neck=neck,
                         head=head, neck_dim=32, head_hidden=16)
    torch.manual_seed(3)
    model = build_model_for(config, 4)
    with torch.no_grad():  # weights no fresh build has: the rebuild must take every one from the file
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return config, model.eval()


@pytest.mark.parametrize("neck,head", [("gem", "mlp"), ("attn", "cosine")])
def test_bundle_rebuilds_the_same_model_from_its_two_files(tmp_path: Path, neck: str, head: str) -> None:
    config, model = _trained(neck, head)
    save_bundle(model, tmp_path, config=config, class_names=["a", "b", "c", "d"], interpolation="bicubic",
                extra={"trial": 7, "val_acc": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    bundle = load_bundle(tmp_path)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(bundle.network()(images), InferenceNetwork(model, *_norm(model)).eval()(images))
    assert bundle.class_names == ["a", "b", "c", "d"] and bundle.config == config
    assert bundle.preprocessing["interpolation"] == "bicubic" and bundle.preprocessing["img_size"] == 32
    assert bundle.card["trial"] == 7 and bundle.card["val_acc"] == 0.5


def _norm(model: torch.nn.Module) -> tuple[list[float], list[float]]:
    return list(model.backbone.data_config["mean"]), list(model.backbone.data_config["std"])


def test_inference_network_sees_exactly_what_the_trainer_feeds() -> None:
    _, model = _trained()
    data = load_dataset("digits", img_size=32, train_size=100, val_size=50, seed=0)
    mean, std = _norm(model)
    feeder = ImageFeeder(data, device=torch.device("cpu"), mean=mean, std=std, batch_size=8, eval_batch_size=8)
    images, _ = next(iter(feeder.eval_batches("test")))
    raw = data.test.images[: len(images)]
    with torch.no_grad():
        expected = torch.softmax(model(images), dim=1)
        assert torch.equal(InferenceNetwork(model, mean, std).eval()(raw), expected)


def test_a_folder_that_is_not_a_bundle_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot read .*config.json"):
        load_bundle(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(WeightsError, match="not a tl-bench model"):
        load_bundle(tmp_path)
    config, model = _trained()
    save_bundle(model, tmp_path, config=config, class_names=list("abcd"), interpolation="bilinear")
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot load .*model.safetensors"):
        load_bundle(tmp_path)
