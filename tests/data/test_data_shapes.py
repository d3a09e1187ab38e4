"""The procedural shapes dataset: same seed same images, balanced classes, fast, options checked."""

from __future__ import annotations

import time

import pytest
import torch

from tl_bench.data import SHAPE_NAMES, generate_shapes, load_dataset
from tl_bench.errors import DatasetError


def test_same_seed_same_images_other_seed_other_images() -> None:
    a_images, a_labels = generate_shapes(4, 6, 24, seed=5)
    b_images, b_labels = generate_shapes(4, 6, 24, seed=5)
    c_images, _ = generate_shapes(4, 6, 24, seed=6)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    assert not torch.equal(a_images, c_images)
    assert a_images.shape == (24, 3, 24, 24) and a_images.dtype == torch.uint8
    assert torch.bincount(a_labels).tolist() == [6, 6, 6, 6]


def test_images_vary_in_colour_and_are_not_blank() -> None:
    images, _ = generate_shapes(10, 5, 32, seed=0)
    per_image_std = images.float().std(dim=(1, 2, 3))
    assert per_image_std.min() > 5  # a shape or a gradient in every image
    channel_means = images.float().mean(dim=(2, 3))
    assert channel_means.std(dim=0).min() > 20  # backgrounds differ between images


def test_glyph_style_draws_light_centred_shapes_and_leaves_the_varied_style_alone() -> None:
    varied, labels = generate_shapes(6, 20, 32, seed=3)
    glyphs, glyph_labels = generate_shapes(6, 20, 32, seed=3, style="glyph")
    assert torch.equal(varied, generate_shapes(6, 20, 32, seed=3, style="varied")[0])  # the default, unchanged
    assert torch.equal(labels, glyph_labels) and not torch.equal(varied, glyphs)
    assert torch.equal(glyphs, generate_shapes(6, 20, 32, seed=3, style="glyph")[0])  # deterministic too
    channels = glyphs.float()
    colour = lambda images: images.float().std(dim=1).mean(dim=(1, 2)).max()  # noqa: E731
    assert colour(glyphs) < 25 < colour(varied)  # grey: the channels agree up to pixel noise
    centre, border = channels[:, :, 12:20, 12:20].mean(), channels[:, :, :3, :].mean()
    assert centre > 2 * border  # light shapes in the middle of a dark background


def test_three_thousand_images_generate_quickly() -> None:
    started = time.perf_counter()
    images, labels = generate_shapes(10, 300, 32, seed=0)
    seconds = time.perf_counter() - started
    assert images.shape == (3000, 3, 32, 32) and torch.bincount(labels).tolist() == [300] * 10
    assert seconds < 20, seconds  # about 1 s on an idle 2-core machine; generous for shared runners


def test_dataset_options_shape_the_data() -> None:
    ds = load_dataset("shapes", img_size=16, num_classes=3, n_per_class=20, size=40)
    assert ds.class_names == list(SHAPE_NAMES[:3]) and ds.num_classes == 3
    assert len(ds.train) + len(ds.val) + len(ds.test) == 60
    assert ds.train.images.shape[1:] == (3, 16, 16)  # rendered at 40 px, resized once to img_size
    assert ds.options["size"] == 40 and ds.options["data_seed"] == 0


@pytest.mark.parametrize(
    "options, word",
    [
        ({"num_classes": 1}, "num_classes=1"),
        ({"num_classes": 11}, "num_classes=11"),
        ({"n_per_class": 2}, "n_per_class=2"),
        ({"size": "big"}, "size='big'"),
        ({"data_seed": -3}, "data_seed=-3"),
        ({"colours": 3}, "'colours'"),
        ({"style": "neon"}, "style='neon'"),
    ],
)
def test_bad_shapes_options(options: dict, word: str) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("shapes", img_size=16, **options)
    assert word in str(err.value) and "\n" not in str(err.value)
