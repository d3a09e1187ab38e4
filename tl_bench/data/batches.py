"""``iter_batches``: the one way to walk a split, held in memory or decoded on access."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from tl_bench.data.splits import Split


def batch_order(
    n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None, drop_last: bool
) -> list[torch.Tensor]:
    """Positions of each batch; the same generator state gives the same batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    batches = list(torch.split(order, batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def iter_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float32 images in [0, 1] of shape (B,3,S,S), int64 labels (B,)) on the CPU.

    Normalisation and augmentation are the trainer's (``tl_bench.data.transforms``).
    ``num_workers`` decodes lazily-held splits in worker processes; in-memory
    splits ignore it.
    """
    batches = batch_order(len(split), batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)
    if split.in_memory or num_workers == 0:
        for positions in batches:
            yield split.images[positions].float().div_(255), split.labels[positions]
        return
    loader = torch.utils.data.DataLoader(
        split.images,
        batch_sampler=[b.tolist() for b in batches],
        num_workers=num_workers,
        persistent_workers=False,
    )
    for positions, images in zip(batches, loader):
        yield images.float().div_(255), split.labels[positions]


__all__ = ["batch_order", "iter_batches"]
