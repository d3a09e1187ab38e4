"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), offline."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tl_bench.data.source import Part, Source, array_images, digest_arrays


def load_digits_source(
    target: str | None, *, img_size: int, interpolation: str, options: dict[str, Any], **_: Any
) -> Source:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are ink counts 0..16; spread them over the full uint8 range.
    grey = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    raw = torch.from_numpy(grey).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = bunch.target.astype(np.int64)
    images = array_images(raw, img_size, interpolation, options.get("in_memory"))
    part = Part(labels=labels, ids=[f"digits/{i}" for i in range(len(labels))], images=images)
    return Source(
        class_names=[str(int(name)) for name in bunch.target_names],
        parts={"all": part},
        content=digest_arrays([grey, labels]),
    )


__all__ = ["load_digits_source"]
