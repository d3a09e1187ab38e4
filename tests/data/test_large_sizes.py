"""Array datasets at a large img_size: resized item by item instead of all at once (digits at 4096
took 90 GB), and a synthetic set too large to render is refused in one line."""

from __future__ import annotations

import pytest

from tl_bench.data.digits import load_digits_source
from tl_bench.data.images import LazyImages
from tl_bench.data.shapes import load_shapes_source
from tl_bench.errors import DatasetError


def test_digits_at_the_largest_size_are_resized_on_access() -> None:
    source = load_digits_source(None, img_size=4096, interpolation="bilinear", options={})
    images = source.parts["all"].images
    assert isinstance(images, LazyImages) and images.shape == (1797, 3, 4096, 4096)
    assert images[0].shape == (3, 4096, 4096)


def test_shapes_too_large_to_render_are_refused_in_one_line() -> None:
    # 46 TiB: more than twice the memory of any machine this runs on
    options = {"num_classes": 10, "n_per_class": 100_000, "size": None, "data_seed": 0, "style": "varied"}
    with pytest.raises(DatasetError, match=r"^rendering 1,000,000 shapes at 4096x4096 would take 46875\.0 GiB; this "
                                           r"machine has [\d.]+ GiB; accepted: a smaller img_size") as caught:
        load_shapes_source(None, img_size=4096, interpolation="bilinear", options=options)
    assert "\n" not in str(caught.value)
