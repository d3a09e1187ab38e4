"""Reading image files and decoding them into uint8 CHW tensors, eagerly or on access.

Every dataset is resized once, to a square ``img_size``, with one of
``INTERPOLATIONS``; the trainer only converts to float and normalises. Decoding itself is
``tl_bench.data.decode``, the module logged models carry too.

Only regular files (links followed) of at most ``MAX_FILE_BYTES`` are read: a named pipe
would block the reader for ever and a link to ``/dev/zero`` would be read until memory runs
out. Anything else is left out with its reason, like a file that is not an image.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tl_bench.data.decode import ImageTooLarge, UnsupportedMode, decode_bytes, pil_to_uint8, resize_uint8, to_rgb
from tl_bench.errors import DatasetError, did_you_mean, first_line

INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic")
# Bytes of the largest image file read: far above any photograph or scan a classifier trains on
# (an uncompressed 89-megapixel RGB image, Pillow's pixel bound, is 268 MB).
MAX_FILE_BYTES = 512 * 2**20
_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class FileRefused(ValueError):
    """A path that is not read: not a regular file, or larger than ``MAX_FILE_BYTES``."""


def _check_file(info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((words for test, words in _KINDS if test(info.st_mode)), "a special file")
        raise FileRefused(f"not a regular file ({kind})")
    if info.st_size > MAX_FILE_BYTES:
        raise FileRefused(f"file too large ({info.st_size:,} bytes; at most {MAX_FILE_BYTES:,} are read)")


def read_file_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path`` if it is a regular file (after following links) of at most ``MAX_FILE_BYTES``;
    FileRefused says why not, OSError when it cannot be read."""
    _check_file(os.stat(path))  # nothing is opened that is not a regular file: opening a pipe blocks
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a pipe swapped in since the stat opens at once
    with os.fdopen(fd, "rb") as handle:
        _check_file(os.fstat(handle.fileno()))
        data = handle.read(MAX_FILE_BYTES + 1)  # a file still growing is read no further than the bound
    if len(data) > MAX_FILE_BYTES:
        raise FileRefused(f"file too large (over {MAX_FILE_BYTES:,} bytes; at most {MAX_FILE_BYTES:,} are read)")
    return data


def check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        hint = did_you_mean(interpolation, INTERPOLATIONS)
        raise DatasetError(f"unknown interpolation {interpolation!r}{hint}", ", ".join(INTERPOLATIONS))


def load_interpolation(timm_interpolation: object) -> str:
    """The interpolation to load images with for timm's (from a data or pretrained config):
    itself when supported here, else bilinear."""
    supported = isinstance(timm_interpolation, str) and timm_interpolation in INTERPOLATIONS
    return timm_interpolation if supported else "bilinear"  # type: ignore[return-value]


def read_image(job: tuple[str, int, str, bool]) -> tuple[str, torch.Tensor | None, str | None]:
    """Read one file given (path, size, interpolation, keep).

    Returns the sha256 of its bytes, the decoded image (when ``keep``) and,
    for an unreadable file, a short reason instead of raising.
    """
    path, size, interpolation, keep = job
    try:
        data = read_file_bytes(path)
    except FileRefused as err:
        return "", None, str(err)
    except OSError as err:
        return "", None, f"cannot be read ({err.strerror})"
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = decode_bytes(data, size, interpolation)
    except UnidentifiedImageError:
        return digest, None, "not an image"
    except (UnsupportedMode, ImageTooLarge) as err:
        return digest, None, str(err)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return digest, None, f"corrupt image ({first_line(err)})"
    return digest, image if keep else None, None


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Map over threads: PIL decoding and torch resizing release the GIL."""
    workers = min(8, os.cpu_count() or 1)
    if workers == 1 or len(items) < 64:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items, chunksize=32))


class ArrayItems:
    """Item loader over a raw uint8 (N,3,H,W) array: resizes one item on access."""

    def __init__(self, raw: np.ndarray | torch.Tensor, size: int, interpolation: str) -> None:
        self.raw = torch.as_tensor(raw)
        self.size, self.interpolation = size, interpolation

    def __call__(self, index: int) -> torch.Tensor:
        return resize_uint8(self.raw[index], self.size, self.interpolation)


class FileItems:
    """Item loader over image files: decodes and resizes one file on access."""

    def __init__(self, paths: Sequence[str], size: int, interpolation: str) -> None:
        self.paths = list(paths)
        self.size, self.interpolation = size, interpolation

    def __call__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            return decode_bytes(read_file_bytes(path), self.size, self.interpolation)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DatasetError(f"cannot read image {path}: {err}") from None


class LazyImages(torch.utils.data.Dataset):
    """Images of one split decoded on access, for sets too large to hold in memory.

    Indexes like the in-memory uint8 tensor it stands in for: an int gives
    (3,S,S), a slice / list / LongTensor of positions gives (B,3,S,S).
    """

    dtype = torch.uint8

    def __init__(self, loader: Callable[[int], torch.Tensor], indices: Sequence[int] | np.ndarray, size: int) -> None:
        self.loader = loader
        self.indices = np.asarray(indices, dtype=np.int64)
        self.size = size

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.indices), 3, self.size, self.size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.ndim == 0):
            return self.loader(int(self.indices[int(key)]))
        positions = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        if len(positions) == 0:
            return torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)
        return torch.stack([self.loader(int(self.indices[p])) for p in positions])

    def decode_all(self) -> torch.Tensor:
        """Every image at once, decoded on threads: uint8 (N,3,S,S)."""
        if len(self) == 0:
            return torch.empty(self.shape, dtype=torch.uint8)
        return torch.stack(parallel_map(self.loader, [int(i) for i in self.indices]))

    def subset(self, positions: Sequence[int] | np.ndarray) -> "LazyImages":
        return LazyImages(self.loader, self.indices[np.asarray(positions, dtype=np.int64)], self.size)


__all__ = [
    "INTERPOLATIONS",
    "MAX_FILE_BYTES",
    "ArrayItems",
    "FileItems",
    "FileRefused",
    "ImageTooLarge",
    "LazyImages",
    "UnsupportedMode",
    "check_interpolation",
    "decode_bytes",
    "load_interpolation",
    "parallel_map",
    "pil_to_uint8",
    "read_file_bytes",
    "read_image",
    "resize_uint8",
    "to_rgb",
]
