"""Datasets and the evaluation protocol: a registry of named datasets, fixed stratified
splits and a fingerprint of what was loaded, as resized uint8 images.

    ds = load_dataset("digits", img_size=32, train_size=800, val_size=200, seed=0)
    ds = load_dataset_for(config)  # the same from a TrialConfig (or any DataSettings)
    ds.train.images, ds.train.labels  # uint8 (N,3,S,S) and int64 (N,)
"""

from __future__ import annotations

from tl_bench.data import transforms
from tl_bench.data.images import INTERPOLATIONS, LazyImages
from tl_bench.data.load import clear_cache, load_dataset, load_dataset_for
from tl_bench.data.catalog import DATASETS, DatasetInfo, resolve_name, resolve_options
from tl_bench.data.shapes import SHAPE_NAMES, generate_shapes
from tl_bench.data.splits import DatasetSplits, Split
from tl_bench.data.torchvision_sets import TORCHVISION_SETS, default_root
from tl_bench.data.transforms import augment_batch

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
    "clear_cache",
    "default_root",
    "generate_shapes",
    "load_dataset",
    "load_dataset_for",
    "resolve_name",
    "resolve_options",
    "transforms",
]
