"""``load_dataset``: one call from a name and settings to fixed, fingerprinted splits;
``load_dataset_for``: the same from the ``DataSettings`` a trial or a study's dataset entry carries.

Results are memoised per process: a study calls this once per trial, and the
same arguments give the same object without decoding anything again. The
decoded items are cached apart from the split, so trials that differ only in
split settings share them too.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from tl_bench.config import DataSettings
from tl_bench.data.fingerprint import fingerprint
from tl_bench.data.images import check_interpolation
from tl_bench.data.catalog import NOT_FINGERPRINTED, resolve_name, resolve_options
from tl_bench.data import source as _source
from tl_bench.data.source import Source
from tl_bench.data.splits import DatasetSplits, assign_splits, materialise
from tl_bench.errors import DatasetError

_CACHE_SIZE = 8  # datasets kept per process; a study usually needs one or two
MAX_IMG_SIZE = 4096  # the largest square side images are resized to (a study's bound may be lower: spec.memory_bound)
_SOURCES: OrderedDict[str, Source] = OrderedDict()
_SPLITS: OrderedDict[str, DatasetSplits] = OrderedDict()
_SPLIT_OPTIONS = ("test_fraction", "val_fraction")
# Trials running in threads must not decode the same dataset twice.
_LOCK = threading.RLock()


def _check_int(key: str, value: Any, *, low: int, high: int | None = None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        accepted = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        accepted += " or null" if allow_none else ""
        raise DatasetError(f"{key}={value!r} is not accepted", accepted, lead="; use ")


def _cached(cache: OrderedDict[str, Any], key: str) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    return None


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def load_dataset(
    name: str,
    *,
    img_size: int,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    interpolation: str = "bilinear",
    **options: Any,
) -> DatasetSplits:
    """Load ``name`` resized to ``img_size`` and split it (see ``tl_bench.data.splits`` for the protocol).

    ``root`` and ``download`` matter to torchvision datasets only; ``options``
    are the dataset's extras (``DATASETS[...].options``). Raises DatasetError.
    """
    info, target = resolve_name(name)
    _check_int("img_size", img_size, low=8, high=MAX_IMG_SIZE)
    _check_int("train_size", train_size, low=1, allow_none=True)
    _check_int("val_size", val_size, low=1, allow_none=True)
    _check_int("seed", seed, low=0, high=2**32 - 1)
    check_interpolation(interpolation)
    resolved = resolve_options(info, options)
    source_options = {k: v for k, v in resolved.items() if k not in _SPLIT_OPTIONS}
    split_settings = {"train_size": train_size, "val_size": val_size, "seed": seed}
    split_settings.update({k: resolved[k] for k in _SPLIT_OPTIONS if k in resolved})
    where = str(Path(target).expanduser().resolve()) if info.needs_target and target else target
    base = str(Path(root).expanduser().resolve()) if root is not None else None
    source_key = json.dumps(
        [info.name, where, img_size, interpolation, base, bool(download), source_options], sort_keys=True, default=str
    )
    splits_key = json.dumps([source_key, split_settings], sort_keys=True)

    with _LOCK:
        done = _cached(_SPLITS, splits_key)
        if done is not None:
            return done
        source = _cached(_SOURCES, source_key)
        if source is None:
            source = info.load(
                target,
                img_size=img_size,
                interpolation=interpolation,
                root=root,
                download=download,
                options=source_options,
            )
            _remember(_SOURCES, source_key, source)
        picks = assign_splits(
            source,
            train_size=train_size,
            val_size=val_size,
            seed=seed,
            test_fraction=resolved.get("test_fraction", 0.0),
            val_fraction=resolved.get("val_fraction", 0.0),
            dataset=name,
        )
        # A split small enough is held in memory even when its whole part is too large (VTAB-1k on Food101).
        budget = _source.IN_MEMORY_LIMIT_BYTES if resolved.get("in_memory") is not False else 0
        splits = {}
        for split, pick in picks.items():
            size = len(pick.positions) * 3 * img_size * img_size
            splits[split] = materialise(split, source.parts[pick.part], pick.positions, hold=size <= budget)
            budget -= size if size <= budget else 0
        fingerprinted = {k: v for k, v in resolved.items() if k not in NOT_FINGERPRINTED}
        result = DatasetSplits(
            name=name,
            train=splits["train"],
            val=splits["val"],
            test=splits["test"],
            num_classes=len(source.class_names),
            class_names=list(source.class_names),
            fingerprint=fingerprint(info.name, source, splits, {**fingerprinted, **split_settings}),
            skipped=list(source.skipped),
            img_size=img_size,
            options=resolved,
        )
        _remember(_SPLITS, splits_key, result)
        return result


def load_dataset_for(settings: DataSettings, *, interpolation: str = "bilinear") -> DatasetSplits:
    """The splits ``settings`` name (a ``TrialConfig`` is one), resized with ``interpolation``."""
    return load_dataset(
        settings.dataset,
        img_size=settings.img_size,
        train_size=settings.train_size,
        val_size=settings.val_size,
        seed=settings.split_seed,
        root=settings.data_root,
        download=settings.download,
        interpolation=interpolation,
        **settings.dataset_options,
    )


def clear_cache() -> None:
    """Forget every memoised dataset (e.g. after the files of an image folder changed)."""
    with _LOCK:
        _SOURCES.clear()
        _SPLITS.clear()


__all__ = ["MAX_IMG_SIZE", "clear_cache", "load_dataset", "load_dataset_for"]
