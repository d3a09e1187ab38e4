"""The ``weights`` label grammar: ``Weights.parse`` reads it, and the model side agrees with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_bench.config import CHECKPOINT_SUFFIXES, TrialConfig, Weights, weights_kind
from tl_bench.errors import WeightsError
from tl_bench.models.weights import WeightsChoice, parse_weights


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("scratch", Weights("scratch", "scratch")),
        ("pretrained", Weights("pretrained", "pretrained")),
        ("timm:in1k", Weights("timm:in1k", "timm", tag="in1k")),
        ("timm:", Weights("timm:", "timm", tag="")),
        ("local:shapes", Weights("local:shapes", "local", name="shapes")),
        ("local:a:b", Weights("local:a:b", "local", name="a:b")),  # only the first colon splits
        *[(f"ckpt/backbone{s}", Weights(f"ckpt/backbone{s}", "file", path=f"ckpt/backbone{s}"))
          for s in CHECKPOINT_SUFFIXES],
        ("Scratch", Weights("Scratch", "unknown")),
        ("backbone.bin", Weights("backbone.bin", "unknown")),
    ],
)
def test_parse_reads_every_kind(label: str, expected: Weights) -> None:
    parsed = Weights.parse(label)
    assert parsed == expected
    assert weights_kind(label) == expected.kind
    assert parsed.from_hub == (expected.kind in ("pretrained", "timm"))


def test_a_prefix_wins_over_a_checkpoint_suffix() -> None:
    # "timm:x.pt" names a hub tag, not a file: the prefix is read first
    assert Weights.parse("timm:x.pt").kind == "timm"
    assert Weights.parse("local:x.safetensors").name == "x.safetensors"


@pytest.mark.parametrize(
    ("label", "choice"),
    [
        ("scratch", WeightsChoice("scratch")),
        ("pretrained", WeightsChoice("hub", tag="")),
        ("timm:in1k", WeightsChoice("hub", tag="in1k")),
        ("w/b.pth", WeightsChoice("file", path=Path("w/b.pth"))),
    ],
)
def test_the_model_side_reads_the_same_grammar(label: str, choice: WeightsChoice) -> None:
    assert parse_weights(label) == choice


def test_the_model_side_refuses_what_it_cannot_load() -> None:
    with pytest.raises(WeightsError, match="name a local checkpoint but no weights_path was resolved"):
        parse_weights("local:shapes")
    with pytest.raises(WeightsError, match=r"unknown weights 'Scratch' \(did you mean 'scratch'\?\); accepted: "):
        parse_weights("Scratch")
    assert parse_weights("local:shapes", "ckpt.pt") == WeightsChoice("file", path=Path("ckpt.pt"))


def test_auto_bn_statistics_follow_the_parsed_kind() -> None:
    assert TrialConfig(dataset="digits", backbone="test_resnet").recalibrates_bn
    assert not TrialConfig(dataset="digits", backbone="test_resnet", weights="timm:in1k").recalibrates_bn


def test_a_checkpoint_file_is_shown_by_its_stem_and_a_digest_of_its_path(tmp_path: Path) -> None:
    from tl_bench.config import weights_label

    deep = tmp_path / "a very" / "deep+odd folder" / "my weights.v2.safetensors"
    label = weights_label(str(deep))
    stem, digest = label.rsplit("-", 1)
    assert stem == "my_weights.v2" and len(digest) == 6 and int(digest, 16) >= 0
    assert weights_label(str(deep)) == label  # stable
    assert weights_label(str(tmp_path / "elsewhere" / "my weights.v2.safetensors")) != label  # another file
    for other in ("scratch", "pretrained", "timm:in1k", "local:shapes"):
        assert weights_label(other) == other


def test_records_carry_the_label_and_the_full_path(tmp_path: Path) -> None:
    from tl_bench.config import weights_label
    from tl_bench.tracking import config_params, trial_run_name

    path = str(tmp_path / "deep" / "folder" / "backbone.pth")
    config = TrialConfig(dataset="digits", backbone="test_resnet", weights=path, weights_path=path)
    params = config_params(config)
    assert params["weights"] == weights_label(path) and params["weights_path"] == path
    assert trial_run_name(config, 3) == f"test_resnet-{weights_label(path)}-f0-gap-linear-t3"
    # a config that could not be built is recorded from its values: the path still lands in weights_path
    assert config_params({"weights": path})["weights_path"] == path
