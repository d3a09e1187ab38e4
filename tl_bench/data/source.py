"""What a dataset loader returns: its items, resized once, before any splitting.

A loader gives either one ``all`` part (the split protocol carves test and
validation from it) or its own ``train`` / ``test`` parts, with ``val``
when the dataset defines one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from tl_bench.data.images import ArrayItems, LazyImages, resize_uint8
from tl_bench.errors import DatasetError
from tl_bench.host_memory import host_memory_bytes

PART_NAMES = ("all", "train", "val", "test")

# Above this many bytes of resized uint8 pixels a part is decoded on access instead of held.
IN_MEMORY_LIMIT_BYTES = 2 << 30


@dataclass
class Part:
    labels: np.ndarray  # int64 (N,)
    ids: list[str]  # stable item names: relative paths or "<part>/<index>"
    images: torch.Tensor | LazyImages  # uint8 (N,3,S,S)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if not (len(self.labels) == len(self.ids) == len(self.images)):
            sizes = f"{len(self.labels)} labels, {len(self.ids)} ids, {len(self.images)} images"
            raise ValueError(f"part sizes differ: {sizes}")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Source:
    class_names: list[str]
    parts: dict[str, Part]
    content: str  # digest of the raw items (pixels or file bytes), independent of the split
    skipped: list[str] = field(default_factory=list)  # "<item>: <reason>" for unreadable items

    def __post_init__(self) -> None:
        unknown = set(self.parts) - set(PART_NAMES)
        if unknown or not ({"all"} == set(self.parts) or {"train", "test"} <= set(self.parts)):
            raise ValueError(f"parts must be 'all' or train/test[/val], got {sorted(self.parts)}")


def keep_in_memory(n_items: int, size: int, in_memory: bool | None) -> bool:
    """Resolve the ``in_memory`` option: None means "when it fits the budget"."""
    if in_memory is not None:
        return bool(in_memory)
    return n_items * 3 * size * size <= IN_MEMORY_LIMIT_BYTES


def array_images(raw: torch.Tensor, size: int, interpolation: str, in_memory: bool | None) -> torch.Tensor | LazyImages:
    """A raw uint8 (N,3,H,W) array at ``size``: resized now when it fits the budget (``keep_in_memory``),
    else resized item by item on access (digits at img_size 4096 would take 90 GB at once)."""
    if keep_in_memory(len(raw), size, in_memory):
        return resize_uint8(raw, size, interpolation)
    return LazyImages(ArrayItems(raw, size, interpolation), np.arange(len(raw)), size)


def check_fits(what: str, nbytes: int, accepted: str) -> None:
    """DatasetError in one line when making ``what`` would take more than half this machine's memory."""
    memory = host_memory_bytes()
    if 2 * nbytes > memory:
        raise DatasetError(f"{what} would take {nbytes / 2**30:.1f} GiB; this machine has {memory / 2**30:.1f} GiB",
                           accepted)


def digest_arrays(arrays: Iterable[np.ndarray | torch.Tensor]) -> str:
    h = hashlib.sha256()
    for array in arrays:
        data = np.ascontiguousarray(array.numpy() if isinstance(array, torch.Tensor) else array)
        h.update(str((data.dtype.str, data.shape)).encode())
        h.update(memoryview(data).cast("B"))
    return h.hexdigest()


__all__ = ["IN_MEMORY_LIMIT_BYTES", "PART_NAMES", "Part", "Source", "array_images", "check_fits", "digest_arrays",
           "keep_in_memory"]
