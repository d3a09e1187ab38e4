"""Mistakes a user can make: each is a named error with one line saying what is accepted."""

from __future__ import annotations

import pytest
import timm

from tl_bench.errors import (
    FreezeDepthError,
    TLBenchError,
    UnknownBackboneError,
    UnknownHeadError,
    UnknownNeckError,
    WeightsError,
)
from tl_bench.models import HEADS, NECKS, build_model, check_backbone, count_stages

IMG = 32


def _message(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


def test_unknown_backbone_names_closest_timm_names() -> None:
    with pytest.raises(UnknownBackboneError) as err:
        build_model("resnet5O", num_classes=2, img_size=IMG)
    text = _message(err)
    assert "resnet5O" in text and "resnet50" in text


def test_unknown_backbone_without_close_names() -> None:
    with pytest.raises(UnknownBackboneError) as err:
        check_backbone("zzzzqqqq")
    assert "no close timm name" in _message(err)


def test_unknown_backbone_tag_lists_tags() -> None:
    with pytest.raises(UnknownBackboneError) as err:
        check_backbone("test_resnet.bogus")
    assert "r160_in1k" in _message(err)


def test_count_stages_checks_the_name() -> None:
    with pytest.raises(UnknownBackboneError):
        count_stages("not_a_model_at_all")


def test_unknown_neck_lists_registry() -> None:
    with pytest.raises(UnknownNeckError) as err:
        build_model("test_resnet", num_classes=2, img_size=IMG, neck="avgpool")
    text = _message(err)
    assert all(name in text for name in NECKS)


def test_unknown_head_lists_registry() -> None:
    with pytest.raises(UnknownHeadError) as err:
        build_model("test_resnet", num_classes=2, img_size=IMG, head="svm")
    text = _message(err)
    assert all(name in text for name in HEADS)


# "2" as text is refused too: text becomes a depth once, where it is read (tl_bench.config.parse_freeze_depth)
@pytest.mark.parametrize("depth", [6, -1, "most", 2.5, True, "2"])
def test_freeze_depth_out_of_range_gives_range(depth: object) -> None:
    with pytest.raises(FreezeDepthError) as err:
        build_model("test_resnet", num_classes=2, img_size=IMG, freeze_depth=depth)
    text = _message(err)
    assert "0..5" in text and "'all'" in text and "test_resnet" in text


def test_freeze_depth_range_is_per_backbone() -> None:
    assert build_model("test_vit", num_classes=2, img_size=IMG, freeze_depth=7).backbone.freeze_depth == 7
    with pytest.raises(FreezeDepthError, match=r"0\.\.7"):
        build_model("test_vit", num_classes=2, img_size=IMG, freeze_depth=8)


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ("imagenet", "accepted"),
        ("local:mine", "weights_path"),
        ("timm:bogus_tag", "r160_in1k"),
    ],
)
def test_bad_weights_labels(weights: str, fragment: str) -> None:
    with pytest.raises(WeightsError) as err:
        build_model("test_resnet", num_classes=2, img_size=IMG, weights=weights)
    assert fragment in _message(err)


def test_pretrained_without_published_weights() -> None:
    untrained = next(m for m in timm.list_models("test_*") if not timm.list_pretrained(f"{m}.*"))
    with pytest.raises(WeightsError) as err:
        build_model(untrained, num_classes=2, img_size=IMG, weights="pretrained")
    assert untrained in _message(err) and "scratch" in str(err.value)


def test_hub_weights_with_a_file_conflict(tmp_path) -> None:
    with pytest.raises(WeightsError, match="also given"):
        build_model(
            "test_resnet", num_classes=2, img_size=IMG, weights="pretrained", weights_path=str(tmp_path / "x.pt")
        )


@pytest.mark.parametrize(("backbone", "size"), [("test_vit", 20), ("test_convnext", 8)])
def test_input_size_the_backbone_cannot_take(backbone: str, size: int) -> None:
    with pytest.raises(TLBenchError) as err:
        build_model(backbone, num_classes=2, img_size=size)
    text = _message(err)
    assert backbone in text and f"img_size {size}" in text
