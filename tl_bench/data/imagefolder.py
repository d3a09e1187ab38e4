"""``imagefolder:PATH``: one folder per class, or ``train/`` and ``test/`` (and optionally ``val/``)
folders each holding one folder per class.

Every file is read once: its bytes are hashed for the fingerprint and it is
decoded to check it. Unreadable files are left out and named in ``skipped``;
they never get a label. Hidden files (``.DS_Store``, ``._x.jpg``) are ignored.

Symbolic links are followed, except a link back to a folder above it (a loop,
which would list every file again under ever longer paths): it is left out and
named in ``skipped``. One file reached by two paths, or two files with the
same bytes, is one item: a test image can never reappear in training under
another name. The copy kept is the one in ``test/`` (then ``val/``, then
``train/``), reached without links, first by path; the others are named in
``skipped``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
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


LOOP = "link back to a folder above it (a loop), not followed"
PART_RANK = {"test": 0, "val": 1, "train": 2, "all": 3}  # which copy of a duplicate is kept


def _loops_back(path: Path) -> bool:
    """Whether ``path`` leads to the folder it sits in, or to one above it."""
    target, here = os.path.realpath(path), os.path.realpath(path.parent)
    return here == target or here.startswith(target.rstrip(os.sep) + os.sep)


def _visible_dirs(folder: Path, loops: list[Path] | None = None) -> list[Path]:
    found = []
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            if _loops_back(p):
                if loops is not None:
                    loops.append(p)
                continue
            found.append(p)
    return found


def _visible_files(folder: Path, loops: list[Path] | None = None) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        kept = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            if _loops_back(here / d):
                if loops is not None:
                    loops.append(here / d)
            else:
                kept.append(d)
        dirnames[:] = kept
        found.extend(here / f for f in sorted(filenames) if not f.startswith("."))
    return found


def _scan(root: Path) -> tuple[list[str], list[_File], list[str]]:
    """Class names, files with labels, and what was left out: loose files outside any class
    folder and links that loop back (``"<path>: <reason>"``)."""
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
    loops: list[Path] = []
    class_dirs = {part: _visible_dirs(folder, loops) for part, folder in parts.items()}
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
    files, left_out = [], []
    for part, folder in parts.items():
        extra = sorted(d.name for d in class_dirs[part] if d.name not in index)
        if extra:
            raise DatasetError(
                f"imagefolder {part}/ has class folders missing from train/: {', '.join(extra)}",
                "every class of val/ and test/ must also be in train/",
                lead="; ",
            )
        for class_dir in class_dirs[part]:
            for path in _visible_files(class_dir, loops):
                files.append(_File(part, path.relative_to(root).as_posix(), str(path), index[class_dir.name]))
        loose_files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
        left_out.extend(f"{p.relative_to(root).as_posix()}: not inside a class folder" for p in loose_files)
    left_out.extend(f"{p.relative_to(root).as_posix()}/: {LOOP}" for p in loops)
    return class_names, files, left_out


def _keep_first(file: _File) -> tuple[int, bool, str]:
    # Of the copies of one image, keep the test one (never train on it), then one reached without links.
    return PART_RANK[file.part], os.path.realpath(file.path) != os.path.abspath(file.path), file.rel


def _one_per(files: list[_File], key: Callable[[_File], str], why: str,
             class_names: list[str]) -> tuple[list[_File], list[str]]:
    """One file per ``key`` (the best by ``_keep_first``), in the original order; the others as
    ``"<path>: <why> <kept path> (duplicate left out)"``, naming both classes when the copies disagree
    (the label the kept copy gives the image is then the one trained or tested on)."""
    best: dict[str, _File] = {}
    for file in sorted(files, key=_keep_first):
        best.setdefault(key(file), file)
    kept = {id(f) for f in best.values()}

    def reason(file: _File) -> str:
        first = best[key(file)]
        if first.label == file.label:
            return f"{file.rel}: {why} {first.rel} (duplicate left out)"
        return (f"{file.rel}: {why} {first.rel}, which is kept as class {class_names[first.label]!r}; this copy "
                f"labels it {class_names[file.label]!r} (conflicting labels, duplicate left out)")

    return [f for f in files if id(f) in kept], [reason(f) for f in files if id(f) not in kept]


def load_imagefolder_source(
    target: str | None, *, img_size: int, interpolation: str, options: dict[str, Any], **_: Any
) -> Source:
    if not target:
        raise DatasetError("imagefolder needs a folder", "imagefolder:PATH", lead=": write ")
    root = Path(target).expanduser()
    class_names, files, skipped = _scan(root)
    files, same_file = _one_per(files, lambda f: os.path.realpath(f.path), "the same file as", class_names)
    in_memory = keep_in_memory(len(files), img_size, options.get("in_memory"))
    # A lazy set is still decoded once here (at a small size) so unreadable files are found up front.
    check_size = img_size if in_memory else min(img_size, 32)
    results = parallel_map(read_image, [(f.path, check_size, interpolation, in_memory) for f in files])
    read: dict[int, tuple[str, torch.Tensor | None]] = {}
    for file, (digest, image, reason) in zip(files, results):
        if reason is not None:
            skipped.append(f"{file.rel}: {reason}")
        else:
            read[id(file)] = (digest, image)
    readable, same_bytes = _one_per([f for f in files if id(f) in read], lambda f: read[id(f)][0], "same bytes as",
                                    class_names)
    skipped += same_file + same_bytes
    kept: dict[str, list[tuple[_File, str, torch.Tensor | None]]] = {}
    for file in readable:
        kept.setdefault(file.part, []).append((file, *read[id(file)]))
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
