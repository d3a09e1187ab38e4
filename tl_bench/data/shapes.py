"""``shapes``: procedurally generated RGB shapes, the offline source task for pretraining.

The class is the shape; everything else is nuisance that a useful
representation has to ignore: position, size, rotation, fill and background
colours, a background gradient, small clutter discs and pixel noise. The
same options always give the same images (one seeded torch Generator draws
every parameter before any pixel is drawn).

``style: glyph`` keeps the shape, rotation, clutter and noise but draws light
grey shapes, large and near the centre, on a dark grey background, as
handwritten digits are: tiny backbones learn it within minutes on a CPU,
whereas the ``varied`` style's random colours need far longer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tl_bench.data.source import Part, Source, array_images, check_fits, digest_arrays
from tl_bench.errors import DatasetError

# Ordered so that a small num_classes keeps the most distinct shapes.
SHAPE_NAMES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring",
    "star", "crescent", "hexagon", "bar", "semicircle",
)  # fmt: skip

SHAPES_DEFAULTS: dict[str, Any] = {
    "num_classes": 10,  # first N of SHAPE_NAMES, 2..10
    "n_per_class": 300,  # images per class
    "size": None,  # side of the rendered images; None renders at img_size
    "data_seed": 0,  # generation seed; the split seed is load_dataset's own ``seed``
    "style": "varied",  # "varied": random colours, sizes and places; "glyph": light, large, centred, on dark
}
STYLES = ("varied", "glyph")

_CLUTTER = 2  # small distractor discs per image (each present with p=0.5)
_PIXELS_PER_CHUNK = 1 << 20


def _polygon(rho: torch.Tensor, phi: torch.Tensor, n: int) -> torch.Tensor:
    sector = 2 * math.pi / n
    return rho * torch.cos(torch.remainder(phi, sector) - sector / 2) - math.cos(math.pi / n)


def _shape_distance(k: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside, exact near edges) to shape ``k`` in its unit frame."""
    rho = torch.sqrt(x * x + y * y)
    if k == 0:
        return rho - 0.9
    if k in (1, 2, 7):
        return _polygon(rho, torch.atan2(y, x), {1: 4, 2: 3, 7: 6}[k])
    if k == 3:
        ax, ay = x.abs(), y.abs()
        return torch.minimum(torch.maximum(ax - 0.28, ay - 0.95), torch.maximum(ay - 0.28, ax - 0.95))
    if k == 4:
        return torch.maximum(rho - 0.95, 0.6 - rho)
    if k == 5:
        arm = 2 * math.pi / 5
        tip = (torch.remainder(torch.atan2(y, x), arm) - arm / 2).abs() / (arm / 2)
        return rho - (0.42 + 0.58 * tip.pow(1.5))
    if k == 6:
        return torch.maximum(rho - 0.95, 0.8 - torch.sqrt((x - 0.5) ** 2 + y * y))
    if k == 8:
        return torch.maximum(x.abs() - 1.0, y.abs() - 0.3)
    return torch.maximum(rho - 0.95, -0.15 - y)


def _as_glyphs(p: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The glyph style from drawn varied-style parameters: grey levels and a layout, same labels and shapes."""
    n = len(p["labels"])

    def grey(low: float, high: float, *shape: int) -> torch.Tensor:
        return (low + (high - low) * torch.rand(n, *shape, 1, generator=gen)).expand(n, *shape, 3)

    radius = 0.55 + (p["radius"] - 0.32)  # 0.55 to 0.85 of the half-width
    return {
        **p,
        "radius": radius,
        "cx": p["cx"] / (1 - p["radius"]) * (1 - radius) * 0.5,
        "cy": p["cy"] / (1 - p["radius"]) * (1 - radius) * 0.5,
        "bg_a": grey(0.0, 0.25),
        "bg_b": grey(0.0, 0.25),
        "fg": grey(0.7, 1.0),
        "clutter_rgb": grey(0.0, 1.0, _CLUTTER),
    }


def _draw_params(n: int, num_classes: int, n_per_class: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    def u(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=gen)

    labels = torch.arange(num_classes).repeat_interleave(n_per_class)[torch.randperm(n, generator=gen)]
    radius = u(n, low=0.32, high=0.62)
    bg_a, bg_b = u(n, 3), u(n, 3)
    fg = u(n, 3)
    # A fill too close to the background would make the label invisible: push it away.
    bg_mean = (bg_a + bg_b) / 2
    close = (fg - bg_mean).norm(dim=1, keepdim=True) < 0.45
    fg = torch.where(close, torch.remainder(bg_mean + 0.5, 1.0), fg)
    return {
        "labels": labels,
        "radius": radius,
        "cx": u(n, low=-1, high=1) * (1 - radius) * 0.9,
        "cy": u(n, low=-1, high=1) * (1 - radius) * 0.9,
        "angle": u(n, high=2 * math.pi),
        "bg_a": bg_a,
        "bg_b": bg_b,
        "bg_dir": u(n, high=2 * math.pi),
        "fg": fg,
        "shade": u(n, low=0.0, high=0.25),
        "noise": u(n, low=0.0, high=0.08),
        "clutter_on": torch.rand(n, _CLUTTER, generator=gen) < 0.5,
        "clutter_xy": u(n, _CLUTTER, 2, low=-0.9, high=0.9),
        "clutter_r": u(n, _CLUTTER, low=0.05, high=0.12),
        "clutter_rgb": u(n, _CLUTTER, 3),
    }


def _render(p: dict[str, torch.Tensor], size: int, noise_gen: torch.Generator) -> torch.Tensor:
    """Float images (B,3,size,size) in [0,1] for one chunk of parameters."""
    b = len(p["labels"])

    def per(t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B,1,1)
        return t[:, None, None]

    def col(t: torch.Tensor) -> torch.Tensor:  # (B,3) -> (B,3,1,1)
        return t[:, :, None, None]

    def alpha(distance: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        # Coverage of a pixel straddling the edge: antialiasing without supersampling.
        return (0.5 - distance * scale * (size / 2)).clamp_(0, 1)[:, None]

    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    u, v = u.expand(b, size, size), v.expand(b, size, size)
    ramp = (u * per(torch.cos(p["bg_dir"])) + v * per(torch.sin(p["bg_dir"])) + 1) / 2
    image = torch.lerp(col(p["bg_a"]), col(p["bg_b"]), ramp[:, None])
    for k in range(_CLUTTER):
        du, dv = u - per(p["clutter_xy"][:, k, 0]), v - per(p["clutter_xy"][:, k, 1])
        disc = torch.sqrt(du * du + dv * dv) - per(p["clutter_r"][:, k])
        cover = alpha(disc, torch.ones(1)) * p["clutter_on"][:, k, None, None, None]
        image = torch.lerp(image, col(p["clutter_rgb"][:, k]).expand_as(image), cover)
    du, dv = u - per(p["cx"]), v - per(p["cy"])
    cos, sin, r = per(torch.cos(p["angle"])), per(torch.sin(p["angle"])), per(p["radius"])
    x, y = (du * cos + dv * sin) / r, (-du * sin + dv * cos) / r
    distance = torch.empty_like(x)
    for k in p["labels"].unique().tolist():
        rows = (p["labels"] == k).nonzero().squeeze(1)
        distance[rows] = _shape_distance(k, x[rows], y[rows])
    # Light shading along the shape's own axis, so fills are not perfectly flat.
    shade = 1 - p["shade"][:, None, None, None] * ((y[:, None] + 1) / 2).clamp_(0, 1)
    image = torch.lerp(image, col(p["fg"]) * shade, alpha(distance, r))
    noise = torch.randn(image.shape, generator=noise_gen)
    return image.add_(noise.mul_(p["noise"][:, None, None, None])).clamp_(0, 1)


def generate_shapes(
    num_classes: int, n_per_class: int, size: int, seed: int, style: str = "varied"
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N,3,size,size) and int64 labels, N = num_classes * n_per_class."""
    n = num_classes * n_per_class
    gen = torch.Generator().manual_seed(seed)
    params = _draw_params(n, num_classes, n_per_class, gen)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    noise_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    if style == "glyph":  # drawn after the varied style's stream, which stays as it was
        params = _as_glyphs(params, gen)
    noise_gen = torch.Generator().manual_seed(noise_seed)
    # Chunks bound the memory; their size depends only on ``size``, so the noise stream is fixed.
    chunk = max(1, _PIXELS_PER_CHUNK // (size * size))
    for start in range(0, n, chunk):
        part = {key: value[start : start + chunk] for key, value in params.items()}
        images[start : start + chunk] = _render(part, size, noise_gen).mul_(255).round_().to(torch.uint8)
    return images, params["labels"]


def _check_int(options: dict[str, Any], key: str, low: int, high: int) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatasetError(
            f"shapes option {key}={value!r} is not accepted", f"an integer from {low} to {high}", lead="; use "
        )
    return value


def check_shapes_options(options: dict[str, Any]) -> None:
    """DatasetError unless every shapes option (defaults filled in) is in range."""
    _check_int(options, "num_classes", 2, len(SHAPE_NAMES))
    _check_int(options, "n_per_class", 3, 100_000)
    _check_int(options, "data_seed", 0, 2**32 - 1)
    if options["size"] is not None:
        _check_int(options, "size", 8, 1024)
    if options["style"] not in STYLES:
        raise DatasetError(f"shapes option style={options['style']!r} is not accepted", " or ".join(STYLES),
                           lead="; use ")


def load_shapes_source(
    target: str | None, *, img_size: int, interpolation: str, options: dict[str, Any], **_: Any
) -> Source:
    check_shapes_options(options)
    num_classes, n_per_class, seed = options["num_classes"], options["n_per_class"], options["data_seed"]
    size = img_size if options["size"] is None else options["size"]
    count = num_classes * n_per_class
    check_fits(f"rendering {count:,} shapes at {size}x{size}", count * 3 * size**2,
               "a smaller img_size, the option size (rendered smaller, then resized) or fewer n_per_class")
    raw, labels = generate_shapes(num_classes, n_per_class, size, seed, options["style"])
    labels_np = labels.numpy().astype(np.int64)
    part = Part(
        labels=labels_np,
        ids=[f"shapes/{i}" for i in range(len(labels_np))],
        images=array_images(raw, img_size, interpolation, options.get("in_memory")),
    )
    content = digest_arrays([raw, labels_np])
    return Source(class_names=list(SHAPE_NAMES[:num_classes]), parts={"all": part}, content=content)


__all__ = ["SHAPES_DEFAULTS", "SHAPE_NAMES", "STYLES", "check_shapes_options", "generate_shapes", "load_shapes_source"]
