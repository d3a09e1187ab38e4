from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tl_bench.data import LazyImages
from tl_bench.data.images import ArrayItems
from tl_bench.train import build_for, train_trial
from tl_bench.train.batches import ImageFeeder, batch_order


def test_batch_order_covers_every_item_once_and_drops_a_lone_last_item() -> None:
    chunks = batch_order(10, 4, torch.Generator().manual_seed(0))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert sorted(torch.cat(chunks).tolist()) == list(range(10))
    shuffled = batch_order(9, 4, torch.Generator().manual_seed(0))
    assert [len(c) for c in shuffled] == [4, 4]  # a batch of one cannot train BatchNorm
    assert [len(c) for c in batch_order(9, 4, None)] == [4, 4, 1]  # evaluation keeps every item
    assert torch.equal(torch.cat(batch_order(9, 4, None)), torch.arange(9))


def test_feeder_normalises_with_the_backbone_mean_and_std(digits) -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    feeder = ImageFeeder(digits, device=torch.device("cpu"), mean=mean, std=std, batch_size=16, eval_batch_size=32)
    images, labels = next(feeder.eval_batches("val"))
    per_channel = (1, 3, 1, 1)
    images_01 = digits.val.images[:32].float() / 255
    expected = (images_01 - torch.tensor(mean).view(per_channel)) / torch.tensor(std).view(per_channel)
    assert torch.allclose(images, expected, atol=1e-5)
    assert torch.equal(labels, digits.val.labels[:32])
    assert sum(len(y) for _, y in feeder.eval_batches("test")) == len(digits.test)


def _lazy(split):
    loader = ArrayItems(split.images, split.images.shape[-1], "bilinear")
    return dataclasses.replace(split, images=LazyImages(loader, np.arange(len(split)), split.images.shape[-1]))


@pytest.mark.parametrize("freeze_depth", [2, "all"])
def test_lazy_splits_train_exactly_like_in_memory_ones(make_config, digits, freeze_depth) -> None:
    lazy = dataclasses.replace(digits, train=_lazy(digits.train), val=_lazy(digits.val), test=_lazy(digits.test))
    assert not lazy.train.in_memory
    config = make_config(epochs=1, freeze_depth=freeze_depth)
    held = train_trial(config, build_for(config, digits.num_classes), digits)
    decoded = train_trial(config, build_for(config, digits.num_classes), lazy)
    assert decoded.history == held.history
    assert decoded.test_acc == held.test_acc
    assert decoded.cache_used == (freeze_depth == "all")
