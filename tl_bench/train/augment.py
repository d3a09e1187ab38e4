"""Training augmentation of uint8 batches, by name: none, light, randaug, trivialaug, autoaug.

``light`` is tl-bench's own affine zoom, shift and flip, done on the device in
one resampling (``data.transforms.augment_batch``). The policies are timm's
training transform (``create_transform(is_training=True, auto_augment=...)``
in its prefetcher form, which ends in uint8 tensors and leaves normalisation
to the device): random resized crop, flip and the policy, applied per image on
the CPU, as timm applies them in its loader. Their cost lands in the training
time, where the trainer measures it.

- ``randaug``: timm's RandAugment ``rand-m9-mstd0.5-inc1`` (its ImageNet recipe)
- ``trivialaug``: TrivialAugment as timm's RandAugment spells it, one op of
  uniformly drawn magnitude per image (``rand-n1-m9-mstd101-inc1``)
- ``autoaug``: AutoAugment's ImageNet policy (``original``)

RandAugment magnitudes are capped at 9 of 10 (``mmax9``): at 10, timm's increasing
posterize keeps 0 bits, which current Pillow refuses.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import numpy as np
import torch
from timm.data import create_transform
from torchvision.transforms.functional import to_pil_image

from tl_bench.config import Augment, TrialConfig
from tl_bench.data.transforms import augment_batch

TIMM_POLICIES: dict[str, str] = {
    "randaug": "rand-m9-mstd0.5-inc1-mmax9",
    "trivialaug": "rand-n1-m9-mstd101-inc1-mmax9",
    "autoaug": "original",
}


class BatchAugment:
    """Random augmentation of uint8 image batches (B,3,S,S) into float images in [0, 1] on ``device``."""

    def __init__(
        self,
        name: Augment,
        *,
        img_size: int,
        device: torch.device,
        mean: Sequence[float],
        interpolation: str = "bilinear",
    ) -> None:
        self.name = name
        self.device = device
        self.generator = torch.Generator(device=device)
        self._per_image: Callable | None = None
        if name in TIMM_POLICIES:
            self._per_image = create_transform(
                img_size,
                is_training=True,
                auto_augment=TIMM_POLICIES[name],
                interpolation=interpolation,
                mean=tuple(mean),
                use_prefetcher=True,  # uint8 out, normalised on the device
            )
        elif name != "light":
            raise ValueError(f"no random augmentation is named {name!r}")

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)
        if self._per_image is not None:
            # timm's per-image ops draw from the global Python, NumPy and torch generators
            # (the trainer seeds torch's); seeded here so a trial repeats exactly.
            random.seed(seed)
            np.random.seed(seed)

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        if self._per_image is None:
            return augment_batch(images_u8.to(self.device, non_blocking=True).float().div_(255.0), self.generator)
        out = torch.stack([self._per_image(to_pil_image(img)) for img in images_u8.cpu()])
        return out.to(self.device, non_blocking=True).float().div_(255.0)


def augment_for(config: TrialConfig, data_config: dict[str, Any], device: torch.device) -> BatchAugment | None:
    """The training augmentation ``config`` names for a backbone with timm data config ``data_config``."""
    if config.augment == "none":
        return None
    return BatchAugment(config.augment, img_size=config.img_size, device=device, mean=data_config["mean"],
                        interpolation=data_config.get("interpolation") or "bilinear")


__all__ = ["BatchAugment", "TIMM_POLICIES", "augment_for"]
