"""Normalised image batches for training and evaluation, in an order the trainer owns.

The trainer draws one permutation per epoch from its own generator and both
the image path and the feature-cache path walk it, so the two see the same
batches in the same order. In-memory splits are moved to the device once and
gathered there; lazy splits are decoded by DataLoader workers.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch

from tl_bench.data import DatasetSplits, Split
from tl_bench.train.augment import BatchAugment
from tl_bench.train.bn_stats import BnPass


def batch_order(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Index batches over ``n`` items: shuffled with ``generator``, else in order.

    BatchNorm in training mode cannot normalise a single item, so a shuffled
    epoch drops a trailing batch of one (a different item every epoch).
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    chunks = list(order.split(batch_size))
    if generator is not None and len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()
    return chunks


def place(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device`` when it fits comfortably, else in pinned host memory."""
    if device.type != "cuda":
        return tensor
    free, _ = torch.cuda.mem_get_info(device)
    if tensor.numel() * tensor.element_size() < free // 4:
        return tensor.to(device, non_blocking=True)
    return tensor.pin_memory()


def _workers(device: torch.device) -> int:
    cpus = os.cpu_count() or 1
    # On CPU the workers compete with the training threads; keep them few.
    return min(8, cpus) if device.type == "cuda" else max(0, min(2, cpus - 1))


class ImageFeeder:
    """Batches of normalised float images ``(B,3,S,S)`` and labels on the training device."""

    def __init__(
        self,
        data: DatasetSplits,
        *,
        device: torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        eval_batch_size: int,
        augment: BatchAugment | None = None,
        channels_last: bool = False,
    ) -> None:
        self.splits = data.splits
        self.device = device
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.augment, self.channels_last = augment, channels_last
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        # uint8 -> normalised float in one fused multiply-add.
        self._scale_u8 = 1.0 / (255.0 * std_t)
        self._scale_01 = 1.0 / std_t
        self._shift = -mean_t / std_t
        self._stored: dict[str, tuple[torch.Tensor | None, torch.Tensor]] = {}
        self.bn_pass = BnPass()  # the frozen BatchNorm pass run on these images before training, if any

    def seed(self, seed: int) -> None:
        if self.augment is not None:
            self.augment.seed(seed)

    def __len__(self) -> int:
        return len(self.splits["train"])

    def steps_per_epoch(self) -> int:
        return len(batch_order(len(self), self.batch_size, torch.Generator().manual_seed(0)))

    def labels(self, name: str) -> torch.Tensor:
        return self._store(name)[1]

    def forward(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model(images)

    def _store(self, name: str) -> tuple[torch.Tensor | None, torch.Tensor]:
        if name not in self._stored:
            split = self.splits[name]
            images = place(split.images, self.device) if split.in_memory else None
            self._stored[name] = (images, split.labels.to(self.device))
        return self._stored[name]

    def normalise(self, images_u8: torch.Tensor, *, augment: bool = False) -> torch.Tensor:
        if augment and self.augment is not None:
            x = torch.addcmul(self._shift, self.augment(images_u8), self._scale_01)
        else:
            x = torch.addcmul(self._shift, images_u8.to(self.device, non_blocking=True).float(), self._scale_u8)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        chunks = batch_order(len(self), self.batch_size, generator)
        yield from self._batches("train", chunks, augment=self.augment is not None)

    def eval_batches(self, name: str, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        chunks = batch_order(len(self.splits[name]), batch_size or self.eval_batch_size, None)
        yield from self._batches(name, chunks, augment=False)

    def _batches(self, name: str, chunks: list[torch.Tensor], *, augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self._store(name)
        if images is None:
            for idx, batch in zip(chunks, self._decoded(self.splits[name], chunks)):
                yield self.normalise(batch, augment=augment), labels[idx.to(labels.device)]
            return
        if chunks and images.device != chunks[0].device:
            # One transfer of the epoch's order instead of one per batch.
            chunks = list(torch.cat(chunks).to(images.device).split([len(c) for c in chunks]))
        for idx in chunks:
            yield self.normalise(images[idx], augment=augment), labels[idx.to(labels.device)]

    def _decoded(self, split: Split, chunks: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        # batch_size=None: each sampled key is a whole index batch, which the
        # lazy split decodes and stacks itself, in exactly this order.
        loader = torch.utils.data.DataLoader(
            split.images,
            batch_size=None,
            sampler=chunks,
            num_workers=_workers(self.device),
            pin_memory=self.device.type == "cuda",
        )
        yield from loader


__all__ = ["ImageFeeder", "batch_order", "place"]
