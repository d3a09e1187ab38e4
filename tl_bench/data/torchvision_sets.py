"""``torchvision:NAME``: the common transfer targets, read with torchvision's own dataset classes.

torchvision parses each dataset's annotation format; this module turns the
result into parts of resized uint8 images. Array datasets (CIFAR, SVHN,
STL10) are resized from their arrays; file datasets are decoded from the
listed image files directly (JPEG draft decoding) and held in memory when
they fit ``IN_MEMORY_LIMIT_BYTES``, else decoded on access.

Files are checked for presence, not against the published checksums, so
subsets and re-packed copies in the official on-disk format load too; a
corrupt file still fails when it is read.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets as tvd

from tl_bench.data.images import ArrayItems, FileItems, LazyImages, parallel_map, read_image, resize_uint8
from tl_bench.data.source import Part, Source, digest_arrays, keep_in_memory
from tl_bench.errors import DatasetError, did_you_mean, first_line


class _CIFAR10(tvd.CIFAR10):
    def _check_integrity(self) -> bool:
        folder = Path(self.root, self.base_folder)
        return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        with open(Path(self.root, self.base_folder, self.meta["filename"]), "rb") as handle:
            self.classes = pickle.load(handle, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class _CIFAR100(_CIFAR10, tvd.CIFAR100):
    pass


class _SVHN(tvd.SVHN):
    def _check_integrity(self) -> bool:
        return Path(self.root, self.filename).is_file()


class _STL10(tvd.STL10):
    def _check_integrity(self) -> bool:
        # The 2.7 GB unlabeled set is not needed for classification.
        folder = Path(self.root, self.base_folder)
        return all((folder / name).is_file() for name in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"))


class _Flowers102(tvd.Flowers102):
    def _check_integrity(self) -> bool:
        annotations = [self._base_folder / self._file_dict[key][0] for key in ("label", "setid")]
        return self._images_folder.is_dir() and all(path.is_file() for path in annotations)


STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _pet_name(path: Path) -> str:
    return " ".join(word.title() for word in Path(path).stem.rsplit("_", 1)[0].split("_"))


def _pet_classes(ds: Any) -> list[str]:
    by_label = {int(y): _pet_name(p) for y, p in zip(ds._labels, ds._images)}
    return [by_label[y] for y in sorted(by_label)]


def _caltech_files(ds: Any) -> list[str]:
    folder = Path(ds.root, "101_ObjectCategories")
    return [str(folder / ds.categories[y] / f"image_{i:04d}.jpg") for y, i in zip(ds.y, ds.index)]


@dataclass(frozen=True)
class TorchvisionSet:
    """How to read one torchvision dataset. Accessors read torchvision's attributes,
    some private (``_labels``, ``_image_files``): there is no public API for them."""

    name: str
    make: Callable[..., Any]  # (root=, download=, **part kwargs, **options) -> dataset
    parts: dict[str, dict[str, Any]]  # our part name -> constructor kwargs
    expected: tuple[str, ...]  # paths under root that must exist when download is off
    item_classes: Callable[[Any], list[str]]  # class name of every item
    class_order: Callable[[Any], list[str]]  # the dataset's class list, in its own order
    arrays: Callable[[Any], np.ndarray] | None = None  # raw uint8 (N,3,H,W), for array datasets
    files: Callable[[Any], list[Any]] | None = None  # image file of every item, for file datasets
    options: dict[str, Any] = field(default_factory=dict)  # accepted extras and their defaults
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # accepted values of each extra


def _by_index(labels: str, classes: str = "classes") -> Callable[[Any], list[str]]:
    return lambda ds: [getattr(ds, classes)[int(y)] for y in getattr(ds, labels)]


_TRAIN_TEST = {"train": {"split": "train"}, "test": {"split": "test"}}
_THREE = {"train": {"split": "train"}, "val": {"split": "val"}, "test": {"split": "test"}}

TORCHVISION_SETS: dict[str, TorchvisionSet] = {
    s.name: s
    for s in [
        TorchvisionSet(
            "CIFAR10", _CIFAR10, {"train": {"train": True}, "test": {"train": False}}, ("cifar-10-batches-py",),
            _by_index("targets"), lambda ds: list(ds.classes), arrays=lambda ds: ds.data.transpose(0, 3, 1, 2),
        ),
        TorchvisionSet(
            "CIFAR100", _CIFAR100, {"train": {"train": True}, "test": {"train": False}}, ("cifar-100-python",),
            _by_index("targets"), lambda ds: list(ds.classes), arrays=lambda ds: ds.data.transpose(0, 3, 1, 2),
        ),
        TorchvisionSet(
            "SVHN", _SVHN, _TRAIN_TEST, ("train_32x32.mat", "test_32x32.mat"),
            lambda ds: [str(int(y)) for y in ds.labels], lambda ds: [str(d) for d in range(10)],
            arrays=lambda ds: ds.data,
        ),
        TorchvisionSet(
            "STL10", _STL10, _TRAIN_TEST, ("stl10_binary",),
            lambda ds: [getattr(ds, "classes", STL10_CLASSES)[int(y)] for y in ds.labels],
            lambda ds: list(getattr(ds, "classes", STL10_CLASSES)), arrays=lambda ds: ds.data,
        ),
        TorchvisionSet(
            "Flowers102", _Flowers102, _THREE, ("flowers-102",),
            _by_index("_labels"), lambda ds: list(ds.classes), files=lambda ds: ds._image_files,
        ),
        TorchvisionSet(
            "OxfordIIITPet", tvd.OxfordIIITPet, {"train": {"split": "trainval"}, "test": {"split": "test"}},
            ("oxford-iiit-pet",), lambda ds: [_pet_name(p) for p in ds._images],
            _pet_classes,
            files=lambda ds: ds._images,
        ),
        TorchvisionSet(
            "DTD", tvd.DTD, _THREE, ("dtd/dtd",), _by_index("_labels"), lambda ds: list(ds.classes),
            files=lambda ds: ds._image_files, options={"partition": 1}, choices={"partition": tuple(range(1, 11))},
        ),
        TorchvisionSet(
            "EuroSAT", tvd.EuroSAT, {"all": {}}, ("eurosat/2750",), _by_index("targets"), lambda ds: list(ds.classes),
            files=lambda ds: [path for path, _ in ds.samples],
        ),
        TorchvisionSet(
            "FGVCAircraft", tvd.FGVCAircraft, _THREE, ("fgvc-aircraft-2013b",), _by_index("_labels"),
            lambda ds: list(ds.classes), files=lambda ds: ds._image_files,
            options={"annotation_level": "variant"},
            choices={"annotation_level": ("variant", "family", "manufacturer")},
        ),
        TorchvisionSet(
            "Food101", tvd.Food101, _TRAIN_TEST, ("food-101",), _by_index("_labels"), lambda ds: list(ds.classes),
            files=lambda ds: ds._image_files,
        ),
        TorchvisionSet(
            "Caltech101", tvd.Caltech101, {"all": {}}, ("caltech101/101_ObjectCategories",),
            _by_index("y", "categories"), lambda ds: list(ds.categories), files=_caltech_files,
        ),
    ]
}  # fmt: skip

_READ_ERRORS = (RuntimeError, OSError, ValueError, KeyError, IndexError, EOFError, TypeError, pickle.UnpicklingError)


def default_root() -> Path:
    """Where torchvision datasets live when no root is given: $TL_BENCH_DATA or ~/.cache/tl_bench/data."""
    return Path(os.environ.get("TL_BENCH_DATA", "~/.cache/tl_bench/data")).expanduser()


def find_torchvision_set(name: str) -> TorchvisionSet:
    """Look a name up case-insensitively; DatasetError lists the known ones."""
    for key, spec in TORCHVISION_SETS.items():
        if key.lower() == name.lower():
            return spec
    hint = did_you_mean(name, TORCHVISION_SETS)
    raise DatasetError(f"unknown torchvision dataset {name!r}{hint}", ", ".join(TORCHVISION_SETS), lead="; known: ")


def check_torchvision_options(name: str, options: dict[str, Any]) -> None:
    """DatasetError unless the dataset's own extras (DTD partition, ...) take accepted values."""
    spec = find_torchvision_set(name)
    for key, accepted in spec.choices.items():
        value = options.get(key, spec.options[key])
        if isinstance(value, bool) or value not in accepted:
            listed = ", ".join(map(str, accepted))
            raise DatasetError(
                f"torchvision:{spec.name} option {key}={value!r} is not accepted", f"one of {listed}", lead="; use "
            )


def _open(spec: TorchvisionSet, root: Path, download: bool, extras: dict[str, Any]) -> dict[str, Any]:
    if not download:
        missing = [str(root / rel) for rel in spec.expected if not (root / rel).exists()]
        if missing:
            raise DatasetError(
                f"torchvision:{spec.name} files not found: expected {' and '.join(missing)}",
                "put the files there, pass another root (data_root / --root) or enable download",
                lead="; ",
            )
    opened = {}
    for part, kwargs in spec.parts.items():
        try:
            opened[part] = spec.make(root=str(root), download=download, **kwargs, **extras)
        except _READ_ERRORS as err:
            action = "downloaded or read" if download else "read"
            raise DatasetError(
                f"torchvision:{spec.name} under {root} could not be {action}: {first_line(err)}"
            ) from None
    return opened


def _array_part(
    spec: TorchvisionSet, part: str, ds: Any, labels: np.ndarray, img_size: int, interpolation: str,
    in_memory: bool | None,
) -> tuple[Part, str]:
    raw = np.ascontiguousarray(spec.arrays(ds), dtype=np.uint8)  # type: ignore[misc]
    if keep_in_memory(len(raw), img_size, in_memory):
        images: torch.Tensor | LazyImages = resize_uint8(torch.from_numpy(raw), img_size, interpolation)
    else:
        images = LazyImages(ArrayItems(raw, img_size, interpolation), np.arange(len(raw)), img_size)
    ids = [f"{part}/{i}" for i in range(len(raw))]
    return Part(labels=labels, ids=ids, images=images), digest_arrays([raw, labels])


def _file_part(
    spec: TorchvisionSet, ds: Any, labels: np.ndarray, root: Path, img_size: int, interpolation: str,
    in_memory: bool | None, skipped: list[str],
) -> tuple[Part, str]:
    paths = [str(p) for p in spec.files(ds)]  # type: ignore[misc]
    ids = [Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else p for p in paths]
    keep = np.ones(len(paths), dtype=bool)
    # Official sets do not change: names and sizes identify their files without reading every byte.
    content = hashlib.sha256()
    for i, (path, rel) in enumerate(zip(paths, ids)):
        try:
            content.update(f"{rel}\t{labels[i]}\t{os.path.getsize(path)}\n".encode())
        except OSError:
            keep[i] = False
            skipped.append(f"{rel}: listed by the annotations but missing")
    if keep_in_memory(int(keep.sum()), img_size, in_memory):
        results = parallel_map(read_image, [(p, img_size, interpolation, True) for p, k in zip(paths, keep) if k])
        decoded = iter(results)
        images_list = []
        for i in np.flatnonzero(keep):
            _, image, reason = next(decoded)
            if reason is not None:
                keep[i] = False
                skipped.append(f"{ids[i]}: {reason}")
            else:
                images_list.append(image)
        empty = torch.empty((0, 3, img_size, img_size), dtype=torch.uint8)
        images: torch.Tensor | LazyImages = torch.stack(images_list) if images_list else empty
    else:
        kept_paths = [p for p, k in zip(paths, keep) if k]
        images = LazyImages(FileItems(kept_paths, img_size, interpolation), np.arange(len(kept_paths)), img_size)
    rows = np.flatnonzero(keep)
    return Part(labels=labels[rows], ids=[ids[i] for i in rows], images=images), content.hexdigest()


def load_torchvision_source(
    target: str | None, *, img_size: int, interpolation: str, root: str | os.PathLike[str] | None,
    download: bool, options: dict[str, Any], **_: Any,
) -> Source:
    spec = find_torchvision_set(target or "")
    check_torchvision_options(spec.name, options)
    extras = {key: options[key] for key in spec.options}
    base = Path(root).expanduser().resolve() if root is not None else default_root().resolve()
    opened = _open(spec, base, download, extras)
    class_names: list[str] = []
    for ds in opened.values():
        class_names += [name for name in spec.class_order(ds) if name not in class_names]
    index = {name: i for i, name in enumerate(class_names)}
    parts: dict[str, Part] = {}
    digests: list[str] = []
    skipped: list[str] = []
    for part, ds in opened.items():
        labels = np.array([index[name] for name in spec.item_classes(ds)], dtype=np.int64)
        if spec.arrays is not None:
            parts[part], digest = _array_part(spec, part, ds, labels, img_size, interpolation, options.get("in_memory"))
        else:
            parts[part], digest = _file_part(
                spec, ds, labels, base, img_size, interpolation, options.get("in_memory"), skipped
            )
        digests.append(f"{part}:{digest}")
        if len(parts[part]) == 0:
            raise DatasetError(f"torchvision:{spec.name} {part} split under {base} has no readable items")
    content = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    return Source(class_names=class_names, parts=parts, content=content, skipped=skipped)


__all__ = [
    "TORCHVISION_SETS",
    "TorchvisionSet",
    "check_torchvision_options",
    "default_root",
    "find_torchvision_set",
    "load_torchvision_source",
]
