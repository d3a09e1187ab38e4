"""The batch augmentation of training images."""

from __future__ import annotations

import pytest
import torch

from tl_bench.data import augment_batch, load_dataset


@pytest.fixture
def digits():
    return load_dataset("digits", img_size=16, train_size=100, val_size=50, seed=0)


def test_augment_is_deterministic_given_the_generator(digits) -> None:
    images = digits.train.images[:16].float() / 255
    a = augment_batch(images, torch.Generator().manual_seed(0))
    b = augment_batch(images, torch.Generator().manual_seed(0))
    c = augment_batch(images, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == images.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a, images)


def test_flip_alone_mirrors_about_half_the_images() -> None:
    images = torch.rand(64, 3, 8, 8)
    out = augment_batch(images, torch.Generator().manual_seed(0), scale=(1.0, 1.0), max_shift=0.0)
    same = torch.isclose(out, images, atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(out, images.flip(-1), atol=1e-5).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 16 <= int(mirrored.sum()) <= 48
    unflipped = augment_batch(images, torch.Generator().manual_seed(0), scale=(1.0, 1.0), max_shift=0.0, flip=False)
    assert torch.allclose(unflipped, images, atol=1e-5)
