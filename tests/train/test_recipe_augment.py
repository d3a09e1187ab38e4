"""Augmentation by name: timm's policies on uint8 batches, today's light one unchanged, cost in training time."""

from __future__ import annotations

import pytest
import torch

from tl_bench.data.transforms import augment_batch
from tl_bench.train import train_config
from tl_bench.train.augment import TIMM_POLICIES, BatchAugment

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", sorted(TIMM_POLICIES))
def test_timm_policies_change_uint8_batches_repeatably(name: str, digits) -> None:
    images = digits.train.images[:16]
    augment = BatchAugment(name, img_size=32, device=CPU, mean=(0.5, 0.5, 0.5))
    augment.seed(3)
    torch.manual_seed(3)  # the flip draws from torch's generator, which the trainer seeds
    first = augment(images)
    augment.seed(3)
    torch.manual_seed(3)
    assert torch.equal(first, augment(images))
    assert first.shape == (16, 3, 32, 32) and first.dtype == torch.float32
    assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0
    assert not torch.allclose(first, images.float() / 255, atol=1e-3)


def test_light_is_the_earlier_affine_augmentation(digits) -> None:
    images = digits.train.images[:8]
    augment = BatchAugment("light", img_size=32, device=CPU, mean=(0.5, 0.5, 0.5))
    augment.seed(0)
    expected = augment_batch(images.float() / 255, torch.Generator().manual_seed(0))
    assert torch.equal(augment(images), expected)


def test_boolean_augment_is_read_as_before(make_config) -> None:
    assert make_config(augment=True).augment == "light" and make_config(augment=False).augment == "none"
    assert train_config(make_config(augment=True, epochs=1)).history == train_config(
        make_config(augment="light", epochs=1)).history


def test_a_policy_reaches_the_loop(make_config) -> None:
    plain = train_config(make_config(epochs=1))
    policy = train_config(make_config(epochs=1, augment="randaug"))
    assert policy.history[0]["train_loss"] != plain.history[0]["train_loss"]
    assert not policy.cache_used and policy.train_time_s > 0  # augmented inside the timed training phase
