"""Light random augmentation of image batches, on tensors.

Datasets are resized once when loaded (the deterministic evaluation
transform), so evaluation only normalises and training adds
``augment_batch`` when a study asks for augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator | None,
    *,
    scale: tuple[float, float] = (0.8, 1.0),
    max_shift: float = 0.1,
    flip: bool = True,
) -> torch.Tensor:
    """Light random augmentation of float images (B,3,H,W): zoom, shift and horizontal flip.

    Each image gets its own crop covering ``scale`` of its side, moved by up to
    ``max_shift`` of its side (reflected at the borders), flipped with p=0.5.
    One affine resampling does it all, and the same generator state gives the
    same output.
    """
    if images.ndim != 4:
        raise ValueError(f"augment_batch expects (B,3,H,W) images, got shape {tuple(images.shape)}")
    b = images.shape[0]
    device = generator.device if generator is not None else torch.device("cpu")
    draws = torch.rand(b, 4, generator=generator, device=device).to(images.device, torch.float32)
    zoom = scale[0] + (scale[1] - scale[0]) * draws[:, 0]
    # Normalised coordinates span 2, so a shift of f of the side is 2f;
    # a zoomed-in crop may also slide within the image.
    reach = (1 - zoom) + 2 * max_shift
    tx, ty = (draws[:, 1] * 2 - 1) * reach, (draws[:, 2] * 2 - 1) * reach
    mirror = torch.where((draws[:, 3] < 0.5) & flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 0, 2] = zoom * mirror, tx
    theta[:, 1, 1], theta[:, 1, 2] = zoom, ty
    source = images if images.is_floating_point() else images.float().div(255)
    grid = F.affine_grid(theta.to(source.dtype), list(source.shape), align_corners=False)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


__all__ = ["augment_batch"]
