"""Backbone outputs, stages and data config, on the tiny timm models."""

from __future__ import annotations

import pytest
import timm
import torch

from tl_bench.models import NECKS, build_model, count_stages

BACKBONES = ["test_resnet", "test_convnext", "test_vit", "test_efficientnet"]
IMG = 32


@pytest.mark.parametrize("backbone", BACKBONES)
def test_last_feature_is_forward_features(backbone: str, images: torch.Tensor) -> None:
    model = build_model(backbone, num_classes=3, img_size=IMG).eval()
    with torch.no_grad():
        feats = model.extract_feat(images)
        expected = model.backbone.model.forward_features(images)
        logits = model(images)
        again = model.forward_from_features(feats)
    assert len(feats) == 1
    torch.testing.assert_close(feats[-1], expected, rtol=0, atol=0)
    torch.testing.assert_close(logits, again, rtol=0, atol=0)
    channels = feats[-1].shape[-1] if feats[-1].ndim == 3 else feats[-1].shape[1]
    assert channels == model.backbone.feature_dims[-1]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_multiscale_features_come_from_the_last_stages(backbone: str, images: torch.Tensor) -> None:
    model = build_model(backbone, num_classes=3, img_size=IMG, neck="multiscale").eval()
    with torch.no_grad():
        feats = model.extract_feat(images)
        plain = model.backbone.model.forward_features(images)
    assert len(feats) == NECKS["multiscale"].scales
    torch.testing.assert_close(feats[-1], plain, rtol=0, atol=0)
    for f, dim in zip(feats[:-1], model.backbone.feature_dims[:-1]):
        assert f.ndim == 4 and f.shape[:2] == (2, dim)
    info = model.backbone.model.feature_info
    assert model.backbone.feature_indices == [len(info) - 3, len(info) - 2]


def test_vit_tokens_and_prefix() -> None:
    model = build_model("test_vit", num_classes=3, img_size=IMG)
    assert model.backbone.num_prefix_tokens == 1
    assert model.extract_feat(torch.zeros(1, 3, IMG, IMG))[-1].shape == (1, 1 + (IMG // 16) ** 2, 64)
    assert model.backbone.data_config["input_size"] == (3, IMG, IMG)
    assert {"mean", "std", "interpolation", "crop_pct"} <= set(model.backbone.data_config)


def test_gap_ignores_the_class_token() -> None:
    model = build_model("test_vit", num_classes=3, img_size=IMG, neck="gap")
    tokens = torch.randn(2, 5, 64)
    torch.testing.assert_close(model.neck([tokens]), tokens[:, 1:].mean(1))


def test_unused_head_modules_are_removed() -> None:
    model = build_model("test_convnext", num_classes=3, img_size=IMG)
    assert model.backbone.dropped_modules == ["head.norm"]
    names = [n for n, _ in model.backbone.model.named_parameters()]
    assert not any(n.startswith("head.") for n in names)
    assert model.backbone.stages[-1].name == "stages.3"


def test_stage_names_and_sizes_follow_timm() -> None:
    stages = build_model("test_resnet", num_classes=3, img_size=IMG, freeze_depth=2).backbone.stages
    assert [s.name for s in stages][1:] == ["layer1", "layer2", "layer3", "layer4"]
    assert stages[0].name.startswith("conv1")
    reference = timm.create_model("test_resnet")
    assert stages[4].n_params == sum(p.numel() for p in reference.layer4.parameters())
    assert [s.frozen for s in stages] == [True, True, False, False, False]


def test_count_stages_is_cached() -> None:
    count_stages.cache_clear()
    assert count_stages("test_efficientnet") == 6
    assert count_stages("test_efficientnet") == 6
    assert count_stages.cache_info().hits == 1
