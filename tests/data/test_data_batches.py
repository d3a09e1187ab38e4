"""iter_batches over in-memory and lazy splits, and the batch transforms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tl_bench.data import augment_batch, iter_batches, load_dataset, normalize


@pytest.fixture
def digits():
    return load_dataset("digits", img_size=16, train_size=100, val_size=50, seed=0)


def test_batches_cover_every_item_once_as_floats(digits) -> None:
    seen = []
    for images, labels in iter_batches(digits.train, 32, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 16, 16)
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        assert labels.dtype == torch.int64 and len(labels) == len(images)
        seen.append(images)
    assert [len(b) for b in seen] == [32, 32, 32, 4]
    all_images = torch.cat(seen)
    expected = digits.train.images.float() / 255
    # same multiset of items: sort by a per-image key
    key = lambda x: x.flatten(1).sum(1) * 1000 + x.flatten(1)[:, 100]  # noqa: E731
    assert torch.allclose(key(all_images).sort().values, key(expected).sort().values)


def test_shuffle_follows_the_generator_and_no_shuffle_keeps_order(digits) -> None:
    def labels(seed: int | None, shuffle: bool) -> list[int]:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.cat([y for _, y in iter_batches(digits.train, 16, shuffle=shuffle, generator=gen)]).tolist()

    assert labels(3, True) == labels(3, True) and labels(3, True) != labels(4, True)
    assert labels(None, False) == digits.train.labels.tolist()
    batches = list(iter_batches(digits.train, 32, shuffle=False, drop_last=True))
    assert [len(y) for _, y in batches] == [32, 32, 32]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_lazy_split_gives_the_same_batches(tmp_path: Path, files: Any, num_workers: int) -> None:
    root = files.write_imagefolder(tmp_path / "pets")
    held = load_dataset(f"imagefolder:{root}", img_size=16, in_memory=True)
    lazy = load_dataset(f"imagefolder:{root}", img_size=16, in_memory=False)
    a = list(iter_batches(held.train, 4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    b = list(iter_batches(lazy.train, 4, shuffle=True, generator=torch.Generator().manual_seed(1), num_workers=num_workers))
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_normalize_uses_per_channel_mean_and_std() -> None:
    images = torch.full((2, 3, 4, 4), 0.5)
    out = normalize(images, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    assert torch.allclose(out[:, 0], torch.zeros(2, 4, 4)) and torch.allclose(out[:, 1], torch.ones(2, 4, 4))
    assert torch.allclose(out[:, 2], torch.full((2, 4, 4), 0.25))


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
