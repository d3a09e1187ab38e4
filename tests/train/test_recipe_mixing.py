"""Mixup and CutMix (timm's Mixup) change the training targets and images, inside the loop."""

from __future__ import annotations

import pytest
import torch

from tl_bench.errors import TrainingSetupError
from tl_bench.train import train_config
from tl_bench.train.cache import FeatureCache
from tl_bench.train.mixing import BatchMixer


def test_mixup_makes_soft_targets_with_label_smoothing_folded_in(make_config) -> None:
    mixer = BatchMixer(make_config(mixup=0.8, label_smoothing=0.1), num_classes=10)
    mixer.seed(0)
    images, labels = torch.rand(8, 3, 8, 8), torch.arange(8)
    original = images.clone()
    mixed, targets = mixer(images, labels)
    assert targets.shape == (8, 10)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert not torch.equal(mixed, original)
    # each row mixes its own label with its mirror's: two classes carry the mass, the rest share the smoothing
    top2 = targets.topk(2, dim=1)
    assert set(top2.indices[0].tolist()) == {0, 7}
    assert targets.min() == pytest.approx(0.1 / 10)


def test_cutmix_pastes_a_box_and_an_odd_batch_loses_its_last_image(make_config) -> None:
    mixer = BatchMixer(make_config(cutmix=1.0), num_classes=10)
    mixer.seed(0)
    images, labels = torch.zeros(7, 3, 16, 16), torch.arange(7)
    images[3:] = 1.0
    mixed, targets = mixer(images, labels)
    assert len(mixed) == len(targets) == 6
    # image 0 (zeros) gets a box of its mirror, image 5 (ones); the box's area is the mirror's label share
    pasted = float(mixed[0].mean())
    assert 0 < pasted < 1
    assert targets[0, 5] == pytest.approx(pasted) and targets[0, 0] == pytest.approx(1 - pasted)


def test_without_mixing_targets_stay_labels(make_config) -> None:
    mixer = BatchMixer(make_config(label_smoothing=0.2), num_classes=10)
    images, labels = torch.rand(5, 3, 8, 8), torch.arange(5)
    out, targets = mixer(images, labels)
    assert out is images and targets is labels
    assert mixer.criterion.label_smoothing == 0.2


def test_mixing_needs_pairs(make_config) -> None:
    with pytest.raises(TrainingSetupError, match="batch_size >= 2"):
        BatchMixer(make_config(mixup=0.2, batch_size=1), num_classes=10)


def test_mixup_reaches_the_loop_and_turns_the_cache_off(make_config) -> None:
    cache = FeatureCache(None)
    plain = train_config(make_config(epochs=1, freeze_depth="all"), cache=cache)
    mixed = train_config(make_config(epochs=1, freeze_depth="all", mixup=0.4, cutmix=1.0), cache=cache)
    again = train_config(make_config(epochs=1, freeze_depth="all", mixup=0.4, cutmix=1.0), cache=cache)
    assert plain.cache_used and not mixed.cache_used
    assert mixed.history[0]["train_loss"] != plain.history[0]["train_loss"]
    assert mixed.history == again.history  # seeded: the same draws every time
