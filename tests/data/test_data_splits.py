"""The evaluation protocol on digits and shapes: sizes, determinism, disjointness, stratification, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tl_bench.data import DatasetSplits, clear_cache, load_dataset
from tl_bench.errors import DatasetError


def _ids(ds: DatasetSplits) -> dict[str, list[str]]:
    return {name: split.ids for name, split in ds.splits.items()}


def test_vtab_protocol_on_digits_keeps_the_whole_test_split() -> None:
    ds = load_dataset("digits", img_size=32, train_size=800, val_size=200, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (800, 200, 539)  # 30% of 1,797 stay test
    full = load_dataset("digits", img_size=32, seed=0)
    assert full.test.ids == ds.test.ids  # limits never touch the test split
    assert len(full.train) + len(full.val) + len(full.test) == 1797
    assert ds.num_classes == 10 and ds.class_names == [str(d) for d in range(10)]
    assert ds.train.images.shape == (800, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert ds.train.labels.dtype == torch.int64


@pytest.mark.parametrize("name, options", [("digits", {}), ("shapes", {"num_classes": 4, "n_per_class": 30})])
def test_splits_are_disjoint_and_cover_the_data(name: str, options: dict) -> None:
    ds = load_dataset(name, img_size=16, seed=3, **options)
    ids = _ids(ds)
    sets = {k: set(v) for k, v in ids.items()}
    assert all(len(sets[k]) == len(ids[k]) for k in ids)  # no duplicates inside a split
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    total = 1797 if name == "digits" else 120
    assert len(sets["train"] | sets["val"] | sets["test"]) == total


def test_same_seed_same_split_other_seed_other_split() -> None:
    first = load_dataset("digits", img_size=16, train_size=300, val_size=100, seed=7)
    clear_cache()
    again = load_dataset("digits", img_size=16, train_size=300, val_size=100, seed=7)
    assert again is not first
    assert _ids(again) == _ids(first)
    assert torch.equal(again.train.images, first.train.images) and torch.equal(again.val.labels, first.val.labels)
    other = load_dataset("digits", img_size=16, train_size=300, val_size=100, seed=8)
    assert other.train.ids != first.train.ids and other.test.ids != first.test.ids


def test_splits_are_stratified() -> None:
    ds = load_dataset("digits", img_size=16, train_size=500, val_size=200, seed=1)
    full = load_dataset("digits", img_size=16, seed=1)
    pool = np.array(full.train.class_counts(10)) + np.array(full.val.class_counts(10))
    for split, size in ((ds.train, 500), (ds.val, 200)):
        counts = np.array(split.class_counts(10))
        assert counts.sum() == size
        # each class keeps its share of the pool, up to rounding
        assert np.all(np.abs(counts - size * pool / pool.sum()) <= 1), counts
    # the test share is taken per class too: 30% of each class
    class_sizes = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert np.all(np.abs(np.array(full.test.class_counts(10)) - 0.3 * class_sizes) <= 1)


def test_memoised_per_arguments() -> None:
    a = load_dataset("shapes", img_size=16, num_classes=3, n_per_class=20)
    assert load_dataset("shapes", img_size=16, num_classes=3, n_per_class=20) is a
    # explicit defaults are the same dataset
    assert load_dataset("shapes", img_size=16, num_classes=3, n_per_class=20, seed=0, val_fraction=0.2) is a
    b = load_dataset("shapes", img_size=16, num_classes=3, n_per_class=20, train_size=20)
    assert b is not a and set(b.train.ids) <= set(a.train.ids)


def test_fingerprint_is_stable_across_loads() -> None:
    # Across processes: tests/test_cli_data.py compares the CLI's fingerprint with this library's.
    first = load_dataset("shapes", img_size=16, num_classes=3, n_per_class=10, train_size=9, seed=2).fingerprint
    clear_cache()
    again = load_dataset("shapes", img_size=16, num_classes=3, n_per_class=10, train_size=9, seed=2).fingerprint
    assert again == first and len(first) == 16 and int(first, 16) >= 0


def test_fingerprint_changes_with_data_options_and_split_settings() -> None:
    base = dict(img_size=16, num_classes=3, n_per_class=10)
    prints = {
        "base": load_dataset("shapes", **base).fingerprint,
        "data": load_dataset("shapes", **{**base, "data_seed": 1}).fingerprint,
        "classes": load_dataset("shapes", **{**base, "num_classes": 4}).fingerprint,
        "split seed": load_dataset("shapes", **base, seed=1).fingerprint,
        "train_size": load_dataset("shapes", **base, train_size=10).fingerprint,
        "val_fraction": load_dataset("shapes", **base, val_fraction=0.3).fingerprint,
    }
    assert len(set(prints.values())) == len(prints), prints
    # how images are resized is not part of the data
    assert load_dataset("digits", img_size=16).fingerprint == load_dataset("digits", img_size=24, interpolation="bicubic").fingerprint


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"train_size": 5000}, ["train_size 5000", "at most"]),
        ({"val_size": 1300}, ["val_size 1300", "at most"]),
        ({"train_size": 5}, ["10 classes"]),
        ({"img_size": 4}, ["img_size=4"]),
        ({"img_size": "32"}, ["img_size='32'"]),
        ({"seed": -1}, ["seed=-1"]),
        ({"interpolation": "lanczos"}, ["lanczos", "bilinear"]),
        ({"num_classes": 3}, ["num_classes", "test_fraction"]),
        ({"test_fraction": 1.5}, ["test_fraction=1.5"]),
    ],
)
def test_bad_settings_raise_one_line(kwargs: dict, words: list[str]) -> None:
    kwargs = {"img_size": 16, **kwargs}
    with pytest.raises(DatasetError) as err:
        load_dataset("digits", **kwargs)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
