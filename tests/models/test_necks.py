"""Necks that match the probing protocols: timm's own pre-logits path, the class token, and
what ``gap`` pools, each checked against timm on the tiny test models."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d, global_pool_nlc

from tl_bench.config import TrialConfig
from tl_bench.errors import ModelBuildError
from tl_bench.models import NECKS, Backbone, build_model, load_bundle, save_bundle
from tl_bench.models.timm_model import strip_head

IMG = 32
CNNS = ["test_resnet", "test_convnext", "test_efficientnet"]


def _timm_model(name: str, **kwargs: object) -> torch.nn.Module:
    """timm's classifier-free model as ``build_model`` creates it (ViTs told the input size)."""
    if "vit" in name:
        kwargs = {"img_size": IMG, **kwargs}
    return timm.create_model(name, num_classes=0, **kwargs)


def _pretrained_stand_in(name: str, folder: Path, **kwargs: object) -> tuple[torch.nn.Module, Path]:
    """A timm model whose every weight is moved off its init (as pretraining would, head norm
    included), saved as a whole-model checkpoint: the norm must come through or the outputs differ."""
    torch.manual_seed(1)
    model = _timm_model(name, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return model.eval(), path


def _timm_probe(ref: torch.nn.Module, fc: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """timm's standard linear probe: its pre-logits features, then a linear layer."""
    return F.linear(ref.forward_head(ref.forward_features(x), pre_logits=True), fc.weight, fc.bias)


# beyond the four families: an attention-pooled ViT (its pretrained attn_pool and fc_norm move to
# the neck) and MambaOut, whose forward_features gives NHWC maps
@pytest.mark.parametrize("backbone", [*CNNS, "test_vit", "test_vit3", "test_mambaout"])
def test_timm_neck_linear_probe_equals_timms_probe(backbone: str, images: torch.Tensor, tmp_path: Path) -> None:
    ref, path = _pretrained_stand_in(backbone, tmp_path)
    model = build_model(backbone, num_classes=5, img_size=IMG, weights=str(path), freeze_depth="all", neck="timm")
    model.train()  # a probe trains in train mode: the frozen backbone and norm must still act as in eval
    assert model.backbone.load_report.missing == []
    with torch.no_grad():
        out = model(images)
    assert torch.allclose(out, _timm_probe(ref, model.head.fc, images), atol=1e-5)
    # a linear probe: only the classifier learns, the pretrained pre-logits norm stays as loaded
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.fc.weight", "head.fc.bias"]


def test_convnext_probe_sees_the_pretrained_head_norm(images: torch.Tensor, tmp_path: Path) -> None:
    ref, path = _pretrained_stand_in("test_convnext", tmp_path)
    timm_neck = build_model("test_convnext", num_classes=5, img_size=IMG, weights=str(path), neck="timm").eval()
    gap = build_model("test_convnext", num_classes=5, img_size=IMG, weights=str(path), neck="gap").eval()
    assert gap.backbone.dropped_modules == ["head.norm"] and timm_neck.backbone.dropped_modules == []
    torch.testing.assert_close(timm_neck.neck.pre_logits.model.head.norm.weight, ref.head.norm.weight)
    with torch.no_grad():
        normed = timm_neck.neck(timm_neck.extract_feat(images))
        pooled = gap.neck(gap.extract_feat(images))
    torch.testing.assert_close(normed, ref.forward_head(ref.forward_features(images), pre_logits=True))
    torch.testing.assert_close(pooled, ref.forward_features(images).mean((2, 3)))
    assert not torch.allclose(normed, pooled, atol=1e-3)  # the norm is not a no-op
    # the norm moved from the backbone to the neck: counted once, the stages unchanged
    assert sum(p.numel() for p in timm_neck.neck.parameters()) == 2 * 64
    assert timm_neck.backbone.n_stages == gap.backbone.n_stages


@pytest.mark.parametrize(("depth", "trains"), [("all", False), (4, True), (0, True)])
def test_timm_neck_trains_with_the_last_stage(depth: object, trains: bool) -> None:
    model = build_model("test_convnext", num_classes=3, img_size=IMG, neck="timm", freeze_depth=depth)
    assert model.backbone.n_stages == 5
    assert {p.requires_grad for p in model.neck.parameters()} == {trains}
    model.train()
    assert model.neck.pre_logits.training is trains


def test_timm_neck_on_an_average_pooled_vit_applies_its_fc_norm(images: torch.Tensor) -> None:
    # timm pools the patch tokens, then applies the pretrained fc_norm, which forward_features lacks
    torch.manual_seed(0)
    ref = _timm_model("test_vit", global_pool="avg").eval()
    with torch.no_grad():
        ref.fc_norm.weight.normal_()
    twin = _timm_model("test_vit", global_pool="avg")
    twin.load_state_dict(ref.state_dict())
    # a name of its own for the per-architecture probes: this is not test_vit's default pooling
    dropped, head = strip_head(twin, "test_vit+avg", IMG, keep_head=True)
    backbone = Backbone(twin, name="test_vit", img_size=IMG, dropped_modules=dropped, pre_logits=head)
    assert head is not None and "fc_norm" in head.names and dropped == []
    neck = NECKS["timm"].for_features(backbone.feature_info)
    gap = NECKS["gap"].for_features(backbone.feature_info)
    backbone.eval()
    with torch.no_grad():
        feats = backbone(images)
        expected = ref.forward_head(ref.forward_features(images), pre_logits=True)
        torch.testing.assert_close(neck(feats), expected)
        torch.testing.assert_close(gap(feats), ref.forward_features(images)[:, 1:].mean(1))
        assert not torch.allclose(gap(feats), expected, atol=1e-3)


def test_cls_neck_is_timms_token_pooling(images: torch.Tensor, tmp_path: Path) -> None:
    ref, path = _pretrained_stand_in("test_vit", tmp_path)
    assert ref.global_pool == "token"
    model = build_model("test_vit", num_classes=3, img_size=IMG, weights=str(path), neck="cls").eval()
    with torch.no_grad():
        got = model.neck(model.extract_feat(images))
        torch.testing.assert_close(got, ref.forward_head(ref.forward_features(images), pre_logits=True))
    assert model.neck.out_dim == 64 and sum(p.numel() for p in model.neck.parameters()) == 0


def test_cls_and_gap_with_register_tokens(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    reg = _timm_model("test_vit", reg_tokens=2).eval()
    backbone = Backbone(reg, name="test_vit", img_size=IMG)
    assert backbone.num_prefix_tokens == 3 and backbone.has_class_token  # class + 2 registers
    with torch.no_grad():
        feats = backbone(images)
        assert feats[-1].shape[1] == 3 + (IMG // 16) ** 2
        gap = NECKS["gap"].for_features(backbone.feature_info)(feats)
        cls = NECKS["cls"].for_features(backbone.feature_info)(feats)
    # timm's own poolings of the same tokens: 'avg' leaves out every prefix token, 'token' takes the first
    torch.testing.assert_close(gap, global_pool_nlc(feats[-1], "avg", num_prefix_tokens=3))
    torch.testing.assert_close(gap, feats[-1][:, 3:].mean(1))
    torch.testing.assert_close(cls, reg.forward_head(feats[-1], pre_logits=True))


@pytest.mark.parametrize("backbone", CNNS)
def test_gap_on_maps_is_timms_average_pool(backbone: str, images: torch.Tensor) -> None:
    model = build_model(backbone, num_classes=3, img_size=IMG, neck="gap").eval()
    with torch.no_grad():
        feats = model.extract_feat(images)
        torch.testing.assert_close(model.neck(feats), SelectAdaptivePool2d(pool_type="avg", flatten=True)(feats[-1]))


@pytest.mark.parametrize("backbone", CNNS)
def test_cls_neck_refuses_backbones_without_a_class_token(backbone: str) -> None:
    with pytest.raises(ModelBuildError) as caught:
        build_model(backbone, num_classes=3, img_size=IMG, neck="cls")
    message = str(caught.value)
    assert "\n" not in message
    assert f"backbone '{backbone}' has none" in message and "accepted: gap" in message and "timm" in message


def test_timm_neck_round_trips_through_a_bundle(images: torch.Tensor, tmp_path: Path) -> None:
    ref, path = _pretrained_stand_in("test_convnext", tmp_path)
    config = TrialConfig(backbone="test_convnext", dataset="digits", img_size=IMG, weights=str(path), neck="timm")
    model = build_model("test_convnext", num_classes=3, img_size=IMG, weights=str(path), neck="timm").eval()
    save_bundle(model, tmp_path / "bundle", config=config, class_names=["a", "b", "c"], interpolation="bicubic")
    back = load_bundle(tmp_path / "bundle").model.eval()
    with torch.no_grad():
        torch.testing.assert_close(back(images), model(images))
