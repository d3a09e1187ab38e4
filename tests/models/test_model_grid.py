"""Every neck x every head x every tiny backbone: forward, backward, output shape, gradients."""

from __future__ import annotations

import pytest
import torch

from tl_bench.errors import ModelBuildError
from tl_bench.models import HEADS, NECKS, build_model

# one of each family: plain CNN, ConvNeXt (LayerNorm, unused head norm), ViT (tokens), EfficientNet (BN, SE)
BACKBONES = ["test_resnet", "test_convnext", "test_vit", "test_efficientnet"]
IMG = 32

NUM_CLASSES = 7
TOKEN_BACKBONES = {"test_vit"}  # the only one above with a class token


def _fits(backbone: str, neck: str) -> bool:
    return backbone in TOKEN_BACKBONES or not NECKS[neck].needs_class_token


def test_registries_hold_the_required_parts() -> None:
    assert {"gap", "gem", "attn", "bottleneck", "mlp", "multiscale", "cls", "timm"} <= set(NECKS)
    assert {"gmp", "avgmax"} & set(NECKS)
    assert len(NECKS) >= 7
    assert {"linear", "mlp", "cosine", "norm_linear"} <= set(HEADS)


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("neck", list(NECKS))
@pytest.mark.parametrize("backbone", BACKBONES)
def test_forward_backward_every_combination(backbone: str, neck: str, head: str, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    if not _fits(backbone, neck):
        with pytest.raises(ModelBuildError, match=f"backbone '{backbone}' has none"):
            build_model(backbone, num_classes=NUM_CLASSES, img_size=IMG, neck=neck, head=head)
        return
    model = build_model(
        backbone, num_classes=NUM_CLASSES, img_size=IMG, neck=neck, head=head, neck_dim=32, head_hidden=16
    )
    logits = model(images)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the backbone really is trained end to end at depth 0, not only the head
    assert any(p.grad.abs().sum() > 0 for p in model.backbone.parameters())


@pytest.mark.parametrize("neck", list(NECKS))
def test_neck_output_width_matches_head_input(neck: str) -> None:
    backbone = "test_resnet" if _fits("test_resnet", neck) else "test_vit"
    model = build_model(backbone, num_classes=3, img_size=IMG, neck=neck, neck_dim=24)
    feats = model.extract_feat(torch.randn(2, 3, IMG, IMG))
    vec = model.neck(feats)
    assert vec.shape == (2, model.neck.out_dim)
    assert model.head.in_dim == model.neck.out_dim
    projects = neck in {"bottleneck", "mlp", "multiscale"}
    assert (model.neck.out_dim == 24) == projects
