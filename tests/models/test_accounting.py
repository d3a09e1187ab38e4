"""Parameter counts per part and FLOPs measured with FlopCounterMode, checked against timm's figures."""

from __future__ import annotations

import pytest
import torch

from tl_bench.models import build_model, count_params, measure_flops

IMG = 32


@pytest.mark.slow
def test_resnet50_matches_timm_published_figures() -> None:
    model = build_model("resnet50", num_classes=1000, img_size=224, neck="gap", head="linear")
    counts = count_params(model)
    assert counts["params_total"] == 25_557_032
    assert counts["params_head"] == 2048 * 1000 + 1000
    assert counts["params_neck"] == 0
    flops = measure_flops(model, 224)
    # timm: 4.11 GMACs at 224; FlopCounterMode counts a multiply-add as 2
    assert flops["flops_fwd_per_image"] == pytest.approx(2 * 4.11e9, rel=0.03)
    # full fine-tune: backward costs about twice the forward (no input gradient for the first conv)
    assert 2.8 < flops["flops_train_per_image"] / flops["flops_fwd_per_image"] < 3.0
    assert flops["flops_head_train_per_image"] == 2 * 2 * 2048 * 1000  # fc forward + weight gradient


def test_vit_attention_is_counted_exactly() -> None:
    # test_vit at 32 px: 2x2 patches + class token = 5 tokens, width 64, 6 blocks, 2 heads, mlp ratio 3
    model = build_model("test_vit", num_classes=10, img_size=IMG, freeze_depth="all")
    tokens, dim, hidden = 5, 64, 192
    block = tokens * dim * 3 * dim + 2 * tokens * tokens * dim + tokens * dim * dim + 2 * tokens * dim * hidden
    macs = 6 * block + 4 * (3 * 16 * 16) * dim + dim * 10
    flops = measure_flops(model, IMG)
    assert flops["flops_fwd_per_image"] == 2 * macs
    # linear probe: the only backward is the head's weight gradient
    assert flops["flops_train_per_image"] == 2 * macs + 2 * dim * 10
    assert flops["flops_head_train_per_image"] == 2 * dim * 10 * 2


@pytest.mark.parametrize("backbone", ["test_resnet", "test_convnext", "test_efficientnet"])
def test_training_flops_fall_with_freeze_depth(backbone: str) -> None:
    train = []
    for depth in (0, 2, "all"):
        flops = measure_flops(build_model(backbone, num_classes=5, img_size=IMG, freeze_depth=depth))
        assert flops["flops_head_train_per_image"] < flops["flops_fwd_per_image"] < flops["flops_train_per_image"]
        train.append(flops["flops_train_per_image"])
    assert train[0] > train[1] > train[2]


def test_counts_add_up_per_part() -> None:
    model = build_model(
        "test_convnext", num_classes=5, img_size=IMG, neck="mlp", head="mlp", neck_dim=20, head_hidden=12, freeze_depth=3
    )
    counts = count_params(model)
    assert counts["params_total"] == counts["params_backbone"] + counts["params_neck"] + counts["params_head"]
    assert counts["params_neck"] == (64 * 20 + 20) + (20 * 20 + 20)
    assert counts["params_head"] == (20 * 12 + 12) + (12 * 5 + 5)
    frozen = sum(s.n_params for s in model.backbone.stages if s.frozen)
    assert counts["params_trainable"] == counts["params_total"] - frozen
    assert counts["trainable_fraction"] == pytest.approx(counts["params_trainable"] / counts["params_total"])


def test_measuring_leaves_the_model_untouched() -> None:
    model = build_model("test_resnet", num_classes=5, img_size=IMG, freeze_depth=1)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    measure_flops(model)
    assert model.training and model.backbone.model.layer1.training
    assert not model.backbone.model.conv1.training  # the frozen stem stays in eval mode
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_flops_are_measured_once_per_architecture_and_trainable_set() -> None:
    from tl_bench.models import accounting

    torch.manual_seed(0)
    first = build_model("test_convnext", num_classes=7, img_size=IMG, freeze_depth="all")
    before = len(accounting._measured)
    flops = measure_flops(first, IMG)
    assert len(accounting._measured) == before + 1
    torch.manual_seed(1)  # other weights, same architecture: the measured figures are reused
    again = measure_flops(build_model("test_convnext", num_classes=7, img_size=IMG, freeze_depth="all"), IMG)
    assert again == flops and len(accounting._measured) == before + 1
    # whatever changes what is counted is measured anew: the trainable set, the head, the input size
    tuned = measure_flops(build_model("test_convnext", num_classes=7, img_size=IMG, freeze_depth=2), IMG)
    wider = measure_flops(build_model("test_convnext", num_classes=9, img_size=IMG, freeze_depth="all"), IMG)
    larger = measure_flops(first, 2 * IMG)
    assert tuned["flops_train_per_image"] > flops["flops_train_per_image"]
    assert wider["flops_fwd_per_image"] > flops["flops_fwd_per_image"]
    assert larger["flops_fwd_per_image"] > flops["flops_fwd_per_image"]
    assert len(accounting._measured) == before + 4
