"""Datasets and the evaluation protocol: a registry of named datasets, fixed stratified
splits, a fingerprint of what was loaded, and batches of resized uint8 images.

    ds = load_dataset("digits", img_size=32, train_size=800, val_size=200, seed=0)
    for images, labels in iter_batches(ds.train, 64, shuffle=True, generator=g):
        ...  # float32 in [0, 1]; normalise with transforms.normalize
"""

from __future__ import annotations

from tl_bench.data import transforms
from tl_bench.data.batches import iter_batches
from tl_bench.data.images import INTERPOLATIONS, LazyImages
from tl_bench.data.load import clear_cache, load_dataset, load_dataset_for
from tl_bench.data.registry import DATASETS, DatasetInfo, check_dataset_name, check_dataset_options
from tl_bench.data.shapes import SHAPE_NAMES, generate_shapes
from tl_bench.data.splits import DatasetSplits, Split
from tl_bench.data.torchvision_sets import TORCHVISION_SETS, default_root
from tl_bench.data.transforms import augment_batch, normalize

__all__ = [
    "DATASETS",
    "INTERPOLATIONS",
    "SHAPE_NAMES",
    "TORCHVISION_SETS",
    "DatasetInfo",
    "DatasetSplits",
    "LazyImages",
    "Split",
    "augment_batch",
    "check_dataset_name",
    "check_dataset_options",
    "clear_cache",
    "default_root",
    "generate_shapes",
    "iter_batches",
    "load_dataset",
    "load_dataset_for",
    "normalize",
    "transforms",
]
