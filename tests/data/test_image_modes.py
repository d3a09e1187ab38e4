"""Every colour mode Pillow reads becomes the right 8-bit RGB (scaled, never clipped), or the file is
left out with one line saying why."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_bench.data import load_dataset
from tl_bench.data.images import UnsupportedMode, decode_bytes, read_image, to_rgb

SIZE = (16, 16)


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _i16(value: int, mode: str = "I;16") -> Image.Image:
    image = Image.new(mode, SIZE)
    image.frombytes(np.full(SIZE, value, dtype=">u2" if mode == "I;16B" else "<u2").tobytes())
    return image


# name -> (the file's bytes, the mode Pillow opens it in, the RGB it must decode to)
CASES: dict[str, tuple[Callable[[], bytes], str, tuple[int, int, int]]] = {
    "16-bit grey PNG": (lambda: _saved(_i16(32896), "PNG"), "I;16", (128, 128, 128)),
    "16-bit grey PNG, white": (lambda: _saved(_i16(65535), "PNG"), "I;16", (255, 255, 255)),
    "16-bit grey TIFF, big-endian": (lambda: _saved(_i16(16448, "I;16B"), "TIFF"), "I;16B", (64, 64, 64)),
    "32-bit integer TIFF": (lambda: _saved(Image.fromarray(np.full(SIZE, 200, np.int32)), "TIFF"), "I", (200, 200, 200)),
    "float TIFF in 0..1": (lambda: _saved(Image.fromarray(np.full(SIZE, 0.5, np.float32)), "TIFF"), "F", (128, 128, 128)),
    "palette PNG": (lambda: _saved(Image.new("RGB", SIZE, (200, 100, 50)).quantize(4), "PNG"), "P", (200, 100, 50)),
    "palette PNG with transparency": (lambda: _saved(Image.new("RGB", SIZE, (200, 100, 50)).quantize(4), "PNG", transparency=0),
                                      "P", (200, 100, 50)),
    "grey with alpha PNG": (lambda: _saved(Image.new("LA", SIZE, (90, 0)), "PNG"), "LA", (90, 90, 90)),
    "RGBA PNG": (lambda: _saved(Image.new("RGBA", SIZE, (10, 20, 30, 128)), "PNG"), "RGBA", (10, 20, 30)),
    "CMYK JPEG": (lambda: _saved(Image.new("CMYK", SIZE, (0, 255, 255, 0)), "JPEG", quality=95), "CMYK", (255, 0, 0)),
    "CMYK TIFF": (lambda: _saved(Image.new("CMYK", SIZE, (255, 0, 255, 0)), "TIFF"), "CMYK", (0, 255, 0)),
    "1-bit PNG": (lambda: _saved(Image.new("1", SIZE, 1), "PNG"), "1", (255, 255, 255)),
    "grey PNG": (lambda: _saved(Image.new("L", SIZE, 77), "PNG"), "L", (77, 77, 77)),
    "CIELab TIFF, neutral": (lambda: _saved(Image.new("LAB", SIZE, (128, 128, 128)), "TIFF"), "LAB", (119, 119, 119)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_mode_decodes_to_the_right_rgb(name: str) -> None:
    make, mode, rgb = CASES[name]
    data = make()
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode == mode  # the file really is in that mode
    decoded = decode_bytes(data, 8, "bilinear")
    assert decoded.dtype.is_floating_point is False and decoded.shape == (3, 8, 8)
    assert decoded.float().mean(dim=(1, 2)).tolist() == pytest.approx(list(rgb), abs=2)


def test_a_mode_without_rgb_conversion_is_left_out_with_its_reason(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMode, match="colour mode La cannot be converted to RGB"):
        to_rgb(Image.new("La", SIZE))
    digest, image, reason = read_image((str(_write(tmp_path / "ok.png", CASES["grey PNG"][0]())), 8, "bilinear", True))
    assert reason is None and image is not None and digest


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_an_image_folder_of_mixed_modes_keeps_each_class_colour(tmp_path: Path) -> None:
    """16-bit, palette and CMYK files side by side: the class colours survive decoding."""
    root = tmp_path / "mixed"
    for j in range(4):
        _write(root / "dark" / f"{j}.png", _saved(_i16(8224 + j), "PNG"))  # 32 of 255
        _write(root / "light" / f"{j}.tif", _saved(Image.new("CMYK", SIZE, (0, 0, 0, 30 + j)), "TIFF"))  # ~225
        _write(root / "pal" / f"{j}.png", _saved(Image.new("RGB", SIZE, (120, 120, 120 + j)).quantize(8), "PNG"))
    ds = load_dataset(f"imagefolder:{root}", img_size=8, seed=0)
    assert ds.skipped == []
    expected = {"dark": 32, "light": 225, "pal": 120}
    for split in ds.splits.values():
        means = split.images.float().mean(dim=(1, 2, 3))
        for mean, label in zip(means.tolist(), split.labels.tolist()):
            assert mean == pytest.approx(expected[ds.class_names[label]], abs=3)
