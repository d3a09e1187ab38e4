"""Encoded image bytes to uint8 RGB pixels: the one decoder of training data and of logged models.

MLflow logs this file with every kept model (its ``decoder`` artifact, loaded by
``tracking/model_code.py``), so a served model decodes exactly as its training data was
decoded, 16-bit PNGs included. It therefore imports nothing of tl-bench: only numpy, PIL,
torch and torchvision.

Images above ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's own bound, about 89 megapixels; raise it
to accept more) are refused with ``ImageTooLarge`` before their pixels are decoded: Pillow only
warns up to twice that bound, and a 144-megapixel PNG took 2.5 GB to decode.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

# Resizing in chunks bounds the temporary float buffers of a large array dataset.
_RESIZE_CHUNK = 2048
# Pillow's warning comes before the refusal below, at the same bound: the refusal is the one line.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class UnsupportedMode(ValueError):
    """An image whose colour mode has no RGB conversion: the file is left out with this reason."""


class ImageTooLarge(ValueError):
    """An image of more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``: refused before decoding."""


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


def check_pixels(width: int, height: int) -> None:
    """ImageTooLarge when ``width`` x ``height`` is over ``PIL.Image.MAX_IMAGE_PIXELS`` (None: no bound)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageTooLarge(f"image too large ({width}x{height} = {width * height:,} pixels; "
                            f"at most {int(limit):,} are decoded, PIL.Image.MAX_IMAGE_PIXELS)")


def decode_bytes(data: bytes, size: int, interpolation: str) -> torch.Tensor:
    """Decode an encoded image to uint8 (3, size, size); raises ImageTooLarge, UnsupportedMode or PIL's own errors."""
    try:
        opened = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # over twice the bound: Pillow refuses before we can
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise ImageTooLarge(f"image too large (over {2 * int(limit):,} pixels; "
                            f"at most {int(limit):,} are decoded, PIL.Image.MAX_IMAGE_PIXELS)") from None
    with opened as image:
        # JPEG decoders can scale by 1/2..1/8 while decoding: far cheaper than a full decode.
        image.draft("RGB", (size, size))
        check_pixels(*image.size)  # the size to be decoded (after draft), from the header alone
        image.load()
        return pil_to_uint8(image, size, interpolation)


__all__ = ["ImageTooLarge", "UnsupportedMode", "check_pixels", "decode_bytes", "pil_to_uint8", "resize_uint8",
           "to_rgb"]
