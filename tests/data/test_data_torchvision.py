"""torchvision:NAME read offline from tiny files in each dataset's real on-disk format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tl_bench.data import TORCHVISION_SETS, load_dataset
from tl_bench.errors import DatasetError


@pytest.mark.parametrize("name", list(TORCHVISION_SETS))
def test_loads_offline_with_every_label_kept(tmp_path: Path, files: Any, name: str) -> None:
    written = files.torchvision[name](tmp_path)
    ds = load_dataset(f"torchvision:{name}", img_size=16, root=tmp_path, download=False)
    assert ds.num_classes == written["classes"] == len(ds.class_names)
    assert ds.skipped == []
    if "all" in written:  # no official split: test and validation are carved out
        assert len(ds.train) + len(ds.val) + len(ds.test) == written["all"]
    else:
        assert len(ds.test) == written["test"]
        if "val" in written:
            assert len(ds.val) == written["val"] and len(ds.train) == written["pool"]
        else:
            assert len(ds.train) + len(ds.val) == written["pool"]
    ids = [set(split.ids) for split in ds.splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    files.assert_labels_match_pixels(ds, written["values"])


@pytest.mark.parametrize("name", ["CIFAR10", "Food101"])
def test_decoded_on_access_when_asked(tmp_path: Path, files: Any, name: str) -> None:
    written = files.torchvision[name](tmp_path)
    held = load_dataset(f"torchvision:{name}", img_size=16, root=tmp_path)
    lazy = load_dataset(f"torchvision:{name}", img_size=16, root=tmp_path, in_memory=False)
    assert held.train.in_memory and not lazy.train.in_memory
    assert lazy.fingerprint == held.fingerprint and lazy.test.ids == held.test.ids
    files.assert_labels_match_pixels(lazy, written["values"])


@pytest.mark.parametrize("name", list(TORCHVISION_SETS))
def test_missing_files_say_where_they_are_expected(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset(f"torchvision:{name}", img_size=16, root=tmp_path / "empty", download=False)
    message = str(err.value)
    assert "\n" not in message and "not found" in message and "download" in message
    assert str(tmp_path / "empty" / TORCHVISION_SETS[name].expected[0]) in message
    assert not (tmp_path / "empty").exists()  # nothing created while looking


def test_names_are_case_insensitive_and_unknown_ones_list_the_known(tmp_path: Path, files: Any) -> None:
    files.torchvision["CIFAR10"](tmp_path)
    ds = load_dataset("torchvision:cifar10", img_size=16, root=tmp_path)
    assert ds.class_names[0] == "cifar0"
    with pytest.raises(DatasetError) as err:
        load_dataset("torchvision:ImageNet21k", img_size=16, root=tmp_path)
    assert "ImageNet21k" in str(err.value) and all(name in str(err.value) for name in TORCHVISION_SETS)


def test_corrupt_archive_files_raise_one_line(tmp_path: Path, files: Any) -> None:
    files.torchvision["CIFAR10"](tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetError) as err:
        load_dataset("torchvision:CIFAR10", img_size=16, root=tmp_path)
    assert "could not be read" in str(err.value) and "\n" not in str(err.value)


def test_files_missing_from_the_annotation_list_are_skipped(tmp_path: Path, files: Any) -> None:
    written = files.torchvision["Food101"](tmp_path)
    (tmp_path / "food-101" / "images" / "baklava" / "train2.jpg").unlink()
    ds = load_dataset("torchvision:Food101", img_size=16, root=tmp_path)
    assert ds.skipped == ["food-101/images/baklava/train2.jpg: listed by the annotations but missing"]
    assert len(ds.train) + len(ds.val) == written["pool"] - 1
    files.assert_labels_match_pixels(ds, written["values"])


@pytest.mark.parametrize(
    "name, options, word",
    [
        ("DTD", {"partition": 11}, "partition=11"),
        ("FGVCAircraft", {"annotation_level": "model"}, "annotation_level='model'"),
        ("CIFAR10", {"partition": 1}, "'partition'"),
        ("CIFAR10", {"test_fraction": 0.5}, "'test_fraction'"),  # CIFAR has its own test split
    ],
)
def test_bad_options(tmp_path: Path, name: str, options: dict, word: str) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset(f"torchvision:{name}", img_size=16, root=tmp_path, **options)
    assert word in str(err.value) and "\n" not in str(err.value)


def test_dtd_partition_is_an_option(tmp_path: Path, files: Any) -> None:
    files.torchvision["DTD"](tmp_path)
    labels = tmp_path / "dtd" / "dtd" / "labels"
    for part in ("train", "val", "test"):  # partition 2 swaps val and test
        source = {"train": "train", "val": "test", "test": "val"}[part]
        (labels / f"{part}2.txt").write_text((labels / f"{source}1.txt").read_text())
    one = load_dataset("torchvision:DTD", img_size=16, root=tmp_path)
    two = load_dataset("torchvision:DTD", img_size=16, root=tmp_path, partition=2)
    assert two.val.ids == one.test.ids and two.fingerprint != one.fingerprint
    assert two.options["partition"] == 2
