"""Decoding and resizing images into uint8 CHW tensors, eagerly or on access.

Every dataset is resized once, to a square ``img_size``, with one of
``INTERPOLATIONS``; the trainer only converts to float and normalises.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from tl_bench.errors import DatasetError, did_you_mean, first_line

INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic")

# Resizing in chunks bounds the temporary float buffers of a large array dataset.
_RESIZE_CHUNK = 2048


def check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        hint = did_you_mean(interpolation, INTERPOLATIONS)
        raise DatasetError(f"unknown interpolation {interpolation!r}{hint}", ", ".join(INTERPOLATIONS))


def load_interpolation(timm_interpolation: object) -> str:
    """The interpolation to load images with for timm's (from a data or pretrained config):
    itself when supported here, else bilinear."""
    supported = isinstance(timm_interpolation, str) and timm_interpolation in INTERPOLATIONS
    return timm_interpolation if supported else "bilinear"  # type: ignore[return-value]


def resize_uint8(images: torch.Tensor, size: int, interpolation: str) -> torch.Tensor:
    """Resize uint8 (3,H,W) or (N,3,H,W) to a square ``size`` (antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images.contiguous()
    mode = InterpolationMode(interpolation)
    if images.ndim == 3 or images.shape[0] <= _RESIZE_CHUNK:
        return TF.resize(images, [size, size], interpolation=mode, antialias=True)
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=images.dtype)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK]
        out[start : start + len(chunk)] = TF.resize(chunk, [size, size], interpolation=mode, antialias=True)
    return out


class UnsupportedMode(ValueError):
    """An image whose colour mode has no RGB conversion: the file is left out with this reason."""


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any mode Pillow reads, scaled rather than clipped.

    - 16-bit grey (``I;16``, ``I;16B``, ...): value / 257, so 65535 is white.
    - 32-bit integer ``I``: by the smallest of the 8-, 16- and 32-bit ranges holding its values.
    - float ``F``: values in 0..1 are scaled by 255; larger ones are read like ``I``.
    - alpha (``RGBA``, ``LA``, ``PA``, palette transparency): dropped, as timm and torchvision do.
    - everything else (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``): Pillow's conversion.

    Raises UnsupportedMode for a mode Pillow cannot convert (the file is then skipped with that reason).
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if mode.startswith("I;16"):
            scale = 65535.0
        elif mode == "F" and top <= 1.0:
            scale = 1.0
        else:
            scale = next(limit for limit in (255.0, 65535.0, 4294967295.0, float("inf")) if top <= limit)
            scale = top if scale == float("inf") else scale
        grey = np.clip(np.rint(values / max(scale, 1e-12) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a palette with transparency goes straight to RGB
    try:
        return image.convert("RGB")
    except ValueError:
        raise UnsupportedMode(f"colour mode {mode} cannot be converted to RGB") from None


def pil_to_uint8(image: Image.Image, size: int, interpolation: str) -> torch.Tensor:
    return resize_uint8(TF.pil_to_tensor(to_rgb(image)), size, interpolation)


def decode_bytes(data: bytes, size: int, interpolation: str) -> torch.Tensor:
    """Decode an encoded image to uint8 (3, size, size); raises PIL's own errors."""
    with Image.open(io.BytesIO(data)) as image:
        # JPEG decoders can scale by 1/2..1/8 while decoding: far cheaper than a full decode.
        image.draft("RGB", (size, size))
        image.load()
        return pil_to_uint8(image, size, interpolation)


def read_image(job: tuple[str, int, str, bool]) -> tuple[str, torch.Tensor | None, str | None]:
    """Read one file given (path, size, interpolation, keep).

    Returns the sha256 of its bytes, the decoded image (when ``keep``) and,
    for an unreadable file, a short reason instead of raising.
    """
    path, size, interpolation, keep = job
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return "", None, f"cannot be read ({err.strerror})"
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = decode_bytes(data, size, interpolation)
    except UnidentifiedImageError:
        return digest, None, "not an image"
    except UnsupportedMode as err:
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
            with open(path, "rb") as handle:
                return decode_bytes(handle.read(), self.size, self.interpolation)
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
    "ArrayItems",
    "FileItems",
    "LazyImages",
    "UnsupportedMode",
    "check_interpolation",
    "decode_bytes",
    "load_interpolation",
    "parallel_map",
    "pil_to_uint8",
    "read_image",
    "resize_uint8",
    "to_rgb",
]
