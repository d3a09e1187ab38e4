"""Which images two datasets share, by content: a warm start's sources must not have seen the target's
validation or test images.

Images are compared at one canonical size (resized the same way), so a source
searched at another input size still matches; the digest is of the pixels, not
of names or paths, so a copy of a file under another name is found too.
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch

from tl_bench.config import DataSettings
from tl_bench.data.images import LazyImages
from tl_bench.data.load import load_dataset_for
from tl_bench.data.splits import Split

CANONICAL_SIZE = 32  # small: the digest only has to tell images apart, and every set decodes quickly there


def _digests(split: Split) -> set[str]:
    images = split.images.decode_all() if isinstance(split.images, LazyImages) else split.images
    return {hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest() for image in images.to(torch.uint8)}


def split_digests(settings: DataSettings) -> dict[str, set[str]]:
    """Per split, the pixel digests of its images at ``CANONICAL_SIZE``."""
    canonical = dataclasses.replace(settings, img_size=CANONICAL_SIZE)
    data = load_dataset_for(canonical, interpolation="bilinear")
    return {name: _digests(split) for name, split in data.splits.items()}


def shared_images(source: DataSettings, target: DataSettings) -> dict[str, int]:
    """How many of the target's ``val`` and ``test`` images the source holds in any of its splits."""
    seen = set().union(*split_digests(source).values())
    held_out = split_digests(target)
    return {name: len(held_out[name] & seen) for name in ("val", "test")}


__all__ = ["CANONICAL_SIZE", "shared_images", "split_digests"]
