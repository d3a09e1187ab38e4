"""Backbone checkpoints: save from one model, load into another of the same backbone name."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm
import torch
from safetensors import safe_open

from tl_bench.errors import WeightsError
from tl_bench.models import build_model, save_backbone_checkpoint
from tl_bench.models.checkpoint import DIGEST_KEY

IMG = 32


def _model(backbone: str, seed: int, **kwargs: object):
    torch.manual_seed(seed)
    return build_model(backbone, num_classes=3, img_size=IMG, **kwargs).eval()


def _features(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.extract_feat(x)[-1]


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("backbone", ["test_resnet", "test_convnext", "test_vit"])
def test_round_trip_features_match(tmp_path: Path, backbone: str, suffix: str, images: torch.Tensor) -> None:
    source = _model(backbone, seed=0, freeze_depth=2)
    path = save_backbone_checkpoint(source, tmp_path / f"bb{suffix}", {"dataset": "digits", "epochs": "3"})
    assert path.is_file()
    other = _model(backbone, seed=1)
    assert not torch.allclose(_features(other, images), _features(source, images))  # different init
    loaded = _model(backbone, seed=1, weights=f"local:{backbone}", weights_path=str(path), neck="gem")
    torch.testing.assert_close(_features(loaded, images), _features(source, images), rtol=0, atol=0)
    report = loaded.backbone.load_report
    assert report is not None and report.missing == [] and report.unexpected == []
    assert report.loaded == len(source.backbone.model.state_dict())


def test_path_given_as_weights_string(tmp_path: Path, images: torch.Tensor) -> None:
    source = _model("test_efficientnet", seed=0)
    path = save_backbone_checkpoint(source.backbone, tmp_path / "eff.pt", {})
    loaded = _model("test_efficientnet", seed=5, weights=str(path))
    torch.testing.assert_close(_features(loaded, images), _features(source, images), rtol=0, atol=0)


def test_safetensors_metadata_kept(tmp_path: Path) -> None:
    path = save_backbone_checkpoint(_model("test_resnet", 0), tmp_path / "m.safetensors", {"dataset": "shapes"})
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert len(meta.pop(DIGEST_KEY)) == 64  # the digest of its tensors, checked when it is read (verify_checkpoint)
    assert meta == {"backbone": "test_resnet", "dataset": "shapes"}


@pytest.mark.parametrize(("backbone", "classifier"), [("test_resnet", "fc."), ("test_convnext", "head.")])
def test_whole_timm_model_checkpoint_drops_classifier(
    tmp_path: Path, backbone: str, classifier: str, images: torch.Tensor
) -> None:
    torch.manual_seed(3)
    timm_model = timm.create_model(backbone, num_classes=10).eval()
    path = tmp_path / "whole.pth"
    torch.save({"model": timm_model.state_dict(), "epoch": 7}, path)
    loaded = _model(backbone, seed=0, weights=str(path))
    report = loaded.backbone.load_report
    assert report.dropped and all(k.startswith(classifier) for k in report.dropped)
    assert report.missing == [] and report.unexpected == []
    with torch.no_grad():
        expected = timm_model.forward_features(images)
    torch.testing.assert_close(_features(loaded, images), expected, rtol=0, atol=0)


def test_partial_checkpoint_reports_missing_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = _model("test_resnet", 0).backbone.model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with caplog.at_level(logging.WARNING):
        report = _model("test_resnet", 1, weights=str(path)).backbone.load_report
    assert report.missing and all(k.startswith("layer4.") for k in report.missing)
    assert report.unexpected == ["extra.weight"]
    assert "partial.pt" in caplog.text and "missing" in caplog.text


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as err:
        _model("test_resnet", 0, weights=str(tmp_path / "nope.safetensors"))
    assert "nope.safetensors" in _one_line(err) and "does not exist" in str(err.value)


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = save_backbone_checkpoint(_model("test_vit", 0), tmp_path / "vit.safetensors", {})
    with pytest.raises(WeightsError) as err:
        _model("test_resnet", 0, weights_path=str(path))
    assert "vit.safetensors" in _one_line(err) and "matches no key" in str(err.value)


def test_shape_mismatch_is_refused(tmp_path: Path) -> None:
    # same key names, different widths
    path = save_backbone_checkpoint(_model("test_convnext2", 0), tmp_path / "c2.safetensors", {})
    with pytest.raises(WeightsError) as err:
        _model("test_convnext", 0, weights_path=str(path))
    assert "c2.safetensors" in _one_line(err) and "shape" in str(err.value)


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError) as err:
        _model("test_resnet", 0, weights=str(path))
    assert "broken.safetensors" in _one_line(err)


class _Payload:
    pass


def test_pickled_objects_are_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "pickle.pth"
    torch.save({"state_dict": _model("test_resnet", 0).backbone.model.state_dict(), "obj": _Payload()}, path)
    with pytest.raises(WeightsError) as err:
        _model("test_resnet", 0, weights=str(path))
    assert "pickle.pth" in _one_line(err) and "cannot be read" in str(err.value)
