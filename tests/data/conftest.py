"""Tiny datasets written to disk in their real formats (pickles, .mat, .bin, JPEG trees).

Every image is one flat colour whose value encodes its class name, so a test
can check that each loaded item kept its label.
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tl_bench.data import clear_cache


def value_of(k: int) -> int:
    return 30 + 20 * k  # distinct after JPEG and resizing


def _image(k: int, size: tuple[int, int], mark: int | None) -> Image.Image:
    image = Image.new("RGB", size, (value_of(k),) * 3)
    if mark is not None:  # one brighter pixel, placed by ``mark``: files differ, colours barely move
        image.putpixel((mark % size[0], mark // size[0] % size[1]), (value_of(k) + 60,) * 3)
    return image


def write_jpeg(path: Path, k: int, size: tuple[int, int] = (14, 10), mark: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _image(k, size, mark).save(path, quality=95)


def write_png(path: Path, k: int, size: tuple[int, int] = (12, 12), mark: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _image(k, size, mark).save(path)


def _flat(n: int, k: np.ndarray, hw: int) -> np.ndarray:
    return np.broadcast_to(np.array([value_of(int(c)) for c in k], dtype=np.uint8)[:, None, None, None], (n, 3, hw, hw)).copy()


def _labels(per_class: int, classes: int) -> np.ndarray:
    return np.tile(np.arange(classes), per_class)


# Each writer returns {class name: colour value} for the classes it wrote and the item counts per split.
Written = dict


def cifar10(root: Path) -> Written:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"cifar{i}" for i in range(10)]
    for i in range(1, 6):
        k = _labels(1, 10)  # 10 per batch, 5 per class over the five batches
        data = _flat(10, k, 32).reshape(10, -1)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({"data": data, "labels": k.tolist()}))
    k = _labels(2, 10)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": _flat(20, k, 32).reshape(20, -1), "labels": k.tolist()}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return {"values": {n: value_of(i) for i, n in enumerate(names)}, "pool": 50, "test": 20, "classes": 10}


def cifar100(root: Path) -> Written:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    names = [f"fine{i}" for i in range(100)]
    for part, per_class in (("train", 5), ("test", 2)):
        k = _labels(per_class, 5)  # five of the hundred classes are present
        data = _flat(len(k), k, 32).reshape(len(k), -1)
        (folder / part).write_bytes(pickle.dumps({"data": data, "fine_labels": k.tolist(), "coarse_labels": (k // 5).tolist()}))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": [f"c{i}" for i in range(20)]}))
    return {"values": {n: value_of(i) for i, n in enumerate(names[:5])}, "pool": 25, "test": 10, "classes": 100}


def svhn(root: Path) -> Written:
    root.mkdir(parents=True, exist_ok=True)
    for part, per_class in (("train", 4), ("test", 2)):
        k = _labels(per_class, 3)
        x = _flat(len(k), k, 32).transpose(2, 3, 1, 0)  # (32, 32, 3, N) as in the .mat files
        # SVHN writes digit 0 as label 10.
        y = np.where(k == 0, 10, k).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(root / f"{part}_32x32.mat", {"X": x, "y": y})
    return {"values": {str(i): value_of(i) for i in range(3)}, "pool": 12, "test": 6, "classes": 10}


def stl10(root: Path) -> Written:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    for part, per_class in (("train", 4), ("test", 2)):
        k = _labels(per_class, 3)
        _flat(len(k), k, 96).tofile(folder / f"{part}_X.bin")
        (k + 1).astype(np.uint8).tofile(folder / f"{part}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return {"values": {n: value_of(i) for i, n in enumerate(names[:3])}, "pool": 12, "test": 6, "classes": 10}


def flowers102(root: Path) -> Written:
    from torchvision.datasets import Flowers102

    folder = root / "flowers-102"
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    image_id = 0
    for key, per_class in (("trnid", 4), ("valid", 2), ("tstid", 2)):
        for k in _labels(per_class, 3):
            image_id += 1
            labels.append(k + 1)
            ids[key].append(image_id)
            write_jpeg(folder / "jpg" / f"image_{image_id:05d}.jpg", int(k))
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": np.array([labels])})
    scipy.io.savemat(folder / "setid.mat", {key: np.array([v]) for key, v in ids.items()})
    return {"values": {Flowers102.classes[i]: value_of(i) for i in range(3)}, "pool": 12, "val": 6, "test": 6, "classes": 102}


def oxford_pet(root: Path) -> Written:
    folder = root / "oxford-iiit-pet"
    breeds = ["Abyssinian", "american_bulldog", "Bengal"]
    for part, per_class in (("trainval", 4), ("test", 2)):
        lines = []
        for j, k in enumerate(_labels(per_class, 3)):
            image_id = f"{breeds[k]}_{part}{j}"
            write_jpeg(folder / "images" / f"{image_id}.jpg", int(k))
            lines.append(f"{image_id} {k + 1} {1 + k % 2} 1")
        (folder / "annotations").mkdir(parents=True, exist_ok=True)
        (folder / "annotations" / f"{part}.txt").write_text("\n".join(lines) + "\n")
    names = ["Abyssinian", "American Bulldog", "Bengal"]
    return {"values": {n: value_of(i) for i, n in enumerate(names)}, "pool": 12, "test": 6, "classes": 3}


def dtd(root: Path) -> Written:
    folder = root / "dtd" / "dtd"
    names = ["banded", "blotchy", "braided"]
    (folder / "labels").mkdir(parents=True)
    for part, per_class in (("train", 4), ("val", 2), ("test", 2)):
        lines = []
        for j, k in enumerate(_labels(per_class, 3)):
            write_jpeg(folder / "images" / names[k] / f"{names[k]}_{part}{j}.jpg", int(k))
            lines.append(f"{names[k]}/{names[k]}_{part}{j}.jpg")
        (folder / "labels" / f"{part}1.txt").write_text("\n".join(lines) + "\n")
    return {"values": {n: value_of(i) for i, n in enumerate(names)}, "pool": 12, "val": 6, "test": 6, "classes": 3}


def eurosat(root: Path) -> Written:
    names = ["AnnualCrop", "Forest", "River"]
    for j, k in enumerate(_labels(6, 3)):
        write_jpeg(root / "eurosat" / "2750" / names[k] / f"{names[k]}_{j}.jpg", int(k))
    return {"values": {n: value_of(i) for i, n in enumerate(names)}, "all": 18, "classes": 3}


def fgvc_aircraft(root: Path) -> Written:
    data = root / "fgvc-aircraft-2013b" / "data"
    names = ["707-320", "727-200", "A300B4"]
    (data / "images").mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(names) + "\n")
    image_id = 1000
    for part, per_class in (("train", 4), ("val", 2), ("test", 2)):
        lines = []
        for k in _labels(per_class, 3):
            image_id += 1
            write_jpeg(data / "images" / f"{image_id:07d}.jpg", int(k))
            lines.append(f"{image_id:07d} {names[k]}")
        (data / f"images_variant_{part}.txt").write_text("\n".join(lines) + "\n")
    return {"values": {n: value_of(i) for i, n in enumerate(names)}, "pool": 12, "val": 6, "test": 6, "classes": 3}


def food101(root: Path) -> Written:
    folder = root / "food-101"
    names = ["apple_pie", "baby_back_ribs", "baklava"]
    (folder / "meta").mkdir(parents=True)
    for part, per_class in (("train", 4), ("test", 2)):
        meta: dict[str, list[str]] = {n: [] for n in names}
        for j, k in enumerate(_labels(per_class, 3)):
            rel = f"{names[k]}/{part}{j}"
            write_jpeg(folder / "images" / f"{rel}.jpg", int(k))
            meta[names[k]].append(rel)
        (folder / "meta" / f"{part}.json").write_text(json.dumps(meta))
    return {"values": {n: value_of(i) for i, n in enumerate(names)}, "pool": 12, "test": 6, "classes": 3}


def caltech101(root: Path) -> Written:
    folder = root / "caltech101" / "101_ObjectCategories"
    names = ["Faces", "accordion", "airplanes"]
    for k, name in enumerate(names):
        for j in range(6):
            write_jpeg(folder / name / f"image_{j + 1:04d}.jpg", k)
    write_jpeg(folder / "BACKGROUND_Google" / "image_0001.jpg", 5)
    return {"values": {n: value_of(i) for i, n in enumerate(names)}, "all": 18, "classes": 3}


TORCHVISION_WRITERS: dict[str, Callable[[Path], Written]] = {
    "CIFAR10": cifar10,
    "CIFAR100": cifar100,
    "SVHN": svhn,
    "STL10": stl10,
    "Flowers102": flowers102,
    "OxfordIIITPet": oxford_pet,
    "DTD": dtd,
    "EuroSAT": eurosat,
    "FGVCAircraft": fgvc_aircraft,
    "Food101": food101,
    "Caltech101": caltech101,
}


def write_imagefolder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"), per_class: int = 6, mark_from: int = 0
) -> Path:
    """``per_class`` images per class; each marked (``mark_from`` onwards), since an image folder's
    identical files are one item (tl-bench leaves duplicates out): folders written with distinct
    ``mark_from`` share no file."""
    for k, name in enumerate(classes):
        for j in range(per_class):
            (write_jpeg if j % 2 else write_png)(root / name / f"{name}_{j}.{'jpg' if j % 2 else 'png'}", k,
                                                 mark=mark_from + j)
    return root


def assert_labels_match_pixels(ds, values: dict[str, int], tolerance: int = 6) -> None:
    """Every loaded image's colour is the colour written for its class name."""
    for split in ds.splits.values():
        images = split.images[list(range(len(split)))] if not split.in_memory else split.images
        means = images.float().mean(dim=(1, 2, 3))
        expected = np.array([values[ds.class_names[int(y)]] for y in split.labels])
        assert np.abs(means.numpy() - expected).max() <= tolerance, split.name


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_giant_png(path: Path, width: int = 12_000, height: int = 12_000) -> Path:
    """A valid all-black 8-bit grey PNG of ``width`` x ``height`` pixels (144 megapixels by default),
    compressed row block by row block: the file is small (140 kB), decoding it is not."""
    squeeze = zlib.compressobj(1)
    rows = b"\x00" * (width + 1) * 1000  # each row: its filter byte, then the pixels
    idat = b"".join(squeeze.compress(rows) for _ in range(height // 1000)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


class Files:
    """What the tests of this folder use, handed out by the ``files`` fixture
    (tests are imported with --import-mode=importlib, so they cannot import this module)."""

    value_of = staticmethod(value_of)
    write_jpeg = staticmethod(write_jpeg)
    write_png = staticmethod(write_png)
    write_imagefolder = staticmethod(write_imagefolder)
    write_giant_png = staticmethod(write_giant_png)
    assert_labels_match_pixels = staticmethod(assert_labels_match_pixels)
    torchvision = TORCHVISION_WRITERS


@pytest.fixture
def files() -> type[Files]:
    return Files


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()
