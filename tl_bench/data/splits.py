"""The evaluation protocol: fixed, stratified train / validation / test splits.

Datasets without their own test split lose a stratified ``test_fraction`` to
it; validation comes from the dataset's own split or a stratified share of
the remaining training pool (``val_size`` items, else ``val_fraction``);
``train_size`` then keeps a stratified subset of what is left. With
``train_size=800, val_size=200`` this is the VTAB-1k protocol: the search
sees 1,000 items and the test split stays whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tl_bench.data.images import LazyImages
from tl_bench.data.source import Part, Source
from tl_bench.errors import DatasetError


@dataclass
class Split:
    """One split: ``labels`` (LongTensor), ``images`` uint8 (N,3,S,S), ``ids`` naming each item."""

    name: str
    labels: torch.Tensor
    images: torch.Tensor | LazyImages
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    @property
    def in_memory(self) -> bool:
        return isinstance(self.images, torch.Tensor)

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class DatasetSplits:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: list[str]
    fingerprint: str  # hex digest of items, labels, options and split settings
    skipped: list[str] = field(default_factory=list)  # "<item>: <reason>" for unreadable items left out
    img_size: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # resolved per-dataset options

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}


def stratified_take(
    labels: np.ndarray, n: int, seed: int, class_names: list[str], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a stratified sample of ``n`` items and of the rest, each sorted."""
    total = len(labels)
    positions = np.arange(total)
    if n >= total:
        return positions, positions[:0]
    present, counts = np.unique(labels, return_counts=True)
    if n < len(present) or total - n < len(present):
        # Stratification needs one item of every class on both sides. Keeping too few is an
        # error; dropping fewer items than there are classes is done at random (it barely
        # moves the class balance).
        if n < len(present):
            raise DatasetError(
                f"{what} of {n} items cannot hold one item of each of the {len(present)} classes",
                f"at least {len(present)}",
                lead="; use ",
            )
        dropped = np.random.RandomState(seed).choice(total, size=total - n, replace=False)
        return np.setdiff1d(positions, dropped), np.sort(dropped)
    if counts.min() < 2:
        lonely = class_names[int(present[counts.argmin()])]
        raise DatasetError(
            f"class {lonely!r} has only 1 item where the {what} is drawn",
            "at least 2 per class",
            lead="; a stratified split needs ",
        )
    from sklearn.model_selection import train_test_split  # slow import, only when splitting

    taken, rest = train_test_split(positions, train_size=n, stratify=labels, random_state=seed)
    return np.sort(taken), np.sort(rest)


def _share(fraction: float, labels: np.ndarray) -> int:
    # A default share is never smaller than one item per class, so small datasets still split.
    return max(int(round(fraction * len(labels))), len(np.unique(labels)))


@dataclass
class _Pick:
    part: str
    positions: np.ndarray


def assign_splits(
    source: Source,
    *,
    train_size: int | None,
    val_size: int | None,
    seed: int,
    test_fraction: float,
    val_fraction: float,
    dataset: str,
) -> dict[str, _Pick]:
    """Decide which items of which part go to train, val and test."""
    names = source.class_names
    parts = source.parts
    if "all" in parts:
        labels = parts["all"].labels
        n_test = _share(test_fraction, labels)
        test_pos, pool_pos = stratified_take(labels, n_test, seed, names, "test split")
        test, pool = _Pick("all", test_pos), _Pick("all", pool_pos)
    else:
        test = _Pick("test", np.arange(len(parts["test"])))
        pool = _Pick("train", np.arange(len(parts["train"])))
    pool_labels = parts[pool.part].labels[pool.positions]

    if "val" in parts:
        val_labels = parts["val"].labels
        n_val = len(val_labels) if val_size is None else val_size
        if n_val > len(val_labels):
            raise DatasetError(
                f"val_size {n_val} is larger than the {len(val_labels)} validation items of {dataset}",
                f"at most {len(val_labels)} or leave it unset",
                lead="; use ",
            )
        val = _Pick("val", stratified_take(val_labels, n_val, seed, names, "validation split")[0])
    else:
        n_val = _share(val_fraction, pool_labels) if val_size is None else val_size
        if n_val >= len(pool_labels):
            raise DatasetError(
                f"val_size {n_val} leaves no training items: {dataset} has {len(pool_labels)} items "
                "outside its test split",
                f"at most {len(pool_labels) - 1}",
                lead="; use ",
            )
        taken, rest = stratified_take(pool_labels, n_val, seed, names, "validation split")
        val = _Pick(pool.part, pool.positions[taken])
        pool = _Pick(pool.part, pool.positions[rest])
        pool_labels = pool_labels[rest]

    if train_size is not None:
        if train_size > len(pool_labels):
            raise DatasetError(
                f"train_size {train_size} is larger than the {len(pool_labels)} training items of {dataset} "
                f"(after {len(test.positions)} test and {len(val.positions)} validation items)",
                f"at most {len(pool_labels)}",
                lead="; use ",
            )
        taken, _ = stratified_take(pool_labels, train_size, seed, names, "training split")
        pool = _Pick(pool.part, pool.positions[taken])
    for pick, what in ((pool, "training"), (val, "validation"), (test, "test")):
        if len(pick.positions) == 0:
            raise DatasetError(
                f"the {what} split of {dataset} is empty", "more items or a larger share", lead="; it needs "
            )
    return {"train": pool, "val": val, "test": test}


def materialise(name: str, part: Part, positions: np.ndarray, *, hold: bool = False) -> Split:
    """Take the chosen items out of a part: a copy for tensors; for lazy images a view,
    or, with ``hold``, the decoded images (a large set whose chosen split is small)."""
    if isinstance(part.images, LazyImages):
        images: torch.Tensor | LazyImages = part.images.subset(positions)
        if hold:
            images = images.decode_all()
    else:
        images = part.images[torch.from_numpy(positions)]
    return Split(
        name=name,
        labels=torch.from_numpy(part.labels[positions]).long(),
        images=images,
        ids=[part.ids[i] for i in positions],
    )


def _joined_images(a: torch.Tensor | LazyImages, b: torch.Tensor | LazyImages) -> torch.Tensor | LazyImages:
    if isinstance(a, LazyImages) and isinstance(b, LazyImages) and a.loader is b.loader:
        return LazyImages(a.loader, np.concatenate([a.indices, b.indices]), a.size)  # still decoded on access
    as_tensor = [x.decode_all() if isinstance(x, LazyImages) else x for x in (a, b)]
    return torch.cat(as_tensor)


def merge_train_val(data: DatasetSplits) -> DatasetSplits:
    """``data`` with its validation images added to the training split (the refit protocol of VTAB-1k).

    The validation split stays as it was, for the epoch loop's report only: it is now training data,
    so nothing may be chosen on it. The fingerprint says the splits changed, so no cache mixes them.
    """
    train = Split("train", torch.cat([data.train.labels, data.val.labels]),
                  _joined_images(data.train.images, data.val.images), [*data.train.ids, *data.val.ids])
    return DatasetSplits(name=data.name, train=train, val=data.val, test=data.test, num_classes=data.num_classes,
                         class_names=data.class_names, fingerprint=f"{data.fingerprint}+val", skipped=data.skipped,
                         img_size=data.img_size, options=data.options)


__all__ = ["DatasetSplits", "Split", "assign_splits", "materialise", "merge_train_val", "stratified_take"]
