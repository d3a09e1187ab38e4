"""``imagefolder:PATH``: one folder per class, or ``train/`` and ``test/`` (and optionally ``val/``)
folders each holding one folder per class.

Every file is read once: its bytes are hashed for the fingerprint and it is
decoded to check it. Unreadable files are left out and named in ``skipped``;
they never get a label. Hidden files (``.DS_Store``, ``._x.jpg``) are ignored.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tl_bench.data.images import FileItems, LazyImages, parallel_map, read_image
from tl_bench.data.source import Part, Source, keep_in_memory
from tl_bench.errors import DatasetError

LAYOUTS = "one sub-folder per class, or train/ and test/ (optional val/) folders each with one sub-folder per class"
SPLIT_FOLDERS = ("train", "val", "test")


@dataclass
class _File:
    part: str
    rel: str  # posix path relative to the dataset folder: the item id
    path: str
    label: int


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _visible_files(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return found


def _scan(root: Path) -> tuple[list[str], list[_File], list[str]]:
    """Class names, files with labels, and loose files that sit outside any class folder."""
    if not root.exists():
        raise DatasetError(f"imagefolder path {root} does not exist", LAYOUTS, lead="; expected ")
    if not root.is_dir():
        raise DatasetError(f"imagefolder path {root} is a file, not a folder", LAYOUTS, lead="; expected ")
    top = {d.name: d for d in _visible_dirs(root)}
    if "train" in top and "test" in top:
        parts = {name: top[name] for name in SPLIT_FOLDERS if name in top}
    elif "train" in top or "test" in top:
        have, missing = ("train", "test") if "train" in top else ("test", "train")
        raise DatasetError(f"imagefolder path {root} has {have}/ but no {missing}/", LAYOUTS, lead="; expected ")
    else:
        parts = {"all": root}
    class_dirs = {part: _visible_dirs(folder) for part, folder in parts.items()}
    first = "train" if "train" in parts else "all"
    class_names = [d.name for d in class_dirs[first]]
    if not class_names:
        what = "is empty" if not _visible_files(parts[first]) else "has files but no class folders"
        raise DatasetError(f"imagefolder path {parts[first]} {what}", LAYOUTS, lead="; expected ")
    if len(class_names) == 1:
        raise DatasetError(
            f"imagefolder path {parts[first]} has a single class folder {class_names[0]!r}",
            "at least 2",
            lead="; a classifier needs ",
        )
    index = {name: i for i, name in enumerate(class_names)}
    files, loose = [], []
    for part, folder in parts.items():
        extra = sorted(d.name for d in class_dirs[part] if d.name not in index)
        if extra:
            raise DatasetError(
                f"imagefolder {part}/ has class folders missing from train/: {', '.join(extra)}",
                "every class of val/ and test/ must also be in train/",
                lead="; ",
            )
        for class_dir in class_dirs[part]:
            for path in _visible_files(class_dir):
                files.append(_File(part, path.relative_to(root).as_posix(), str(path), index[class_dir.name]))
        loose_files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
        loose.extend(p.relative_to(root).as_posix() for p in loose_files)
    return class_names, files, loose


def load_imagefolder_source(
    target: str | None, *, img_size: int, interpolation: str, options: dict[str, Any], **_: Any
) -> Source:
    if not target:
        raise DatasetError("imagefolder needs a folder", "imagefolder:PATH", lead=": write ")
    root = Path(target).expanduser()
    class_names, files, loose = _scan(root)
    in_memory = keep_in_memory(len(files), img_size, options.get("in_memory"))
    # A lazy set is still decoded once here (at a small size) so unreadable files are found up front.
    check_size = img_size if in_memory else min(img_size, 32)
    results = parallel_map(read_image, [(f.path, check_size, interpolation, in_memory) for f in files])
    skipped = [f"{rel}: not inside a class folder" for rel in loose]
    kept: dict[str, list[tuple[_File, str, torch.Tensor | None]]] = {}
    for file, (digest, image, reason) in zip(files, results):
        if reason is not None:
            skipped.append(f"{file.rel}: {reason}")
        else:
            kept.setdefault(file.part, []).append((file, digest, image))
    if not kept:
        example = f" (e.g. {skipped[0]})" if skipped else ""
        raise DatasetError(f"imagefolder path {root} has no readable images; {len(skipped)} files skipped{example}")
    if "all" not in kept:
        for needed in ("train", "test"):
            if needed not in kept:
                raise DatasetError(
                    f"imagefolder {needed}/ of {root} has no readable images",
                    "at least one per class",
                    lead="; it needs ",
                )
    first = "all" if "all" in kept else "train"
    readable = {f.label for f, _, _ in kept[first]}
    empty = [name for label, name in enumerate(class_names) if label not in readable]
    if empty:
        raise DatasetError(
            f"imagefolder class {empty[0]!r} has no readable images to train on ({len(skipped)} files skipped)",
            "at least one image",
            lead="; every class folder needs ",
        )
    parts: dict[str, Part] = {}
    content = hashlib.sha256()
    for part, items in kept.items():
        labels = np.array([f.label for f, _, _ in items], dtype=np.int64)
        ids = [f.rel for f, _, _ in items]
        for f, digest, _ in items:
            content.update(f"{f.rel}\t{f.label}\t{digest}\n".encode())
        if in_memory:
            images: torch.Tensor | LazyImages = torch.stack([image for _, _, image in items])  # type: ignore[misc]
        else:
            loader = FileItems([f.path for f, _, _ in items], img_size, interpolation)
            images = LazyImages(loader, np.arange(len(items)), img_size)
        parts[part] = Part(labels=labels, ids=ids, images=images)
    return Source(class_names=class_names, parts=parts, content=content.hexdigest(), skipped=skipped)


__all__ = ["LAYOUTS", "load_imagefolder_source"]
