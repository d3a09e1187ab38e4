"""imagefolder:PATH with symbolic links and duplicate files: no loops, and no image in two splits."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from tl_bench.data import load_dataset
from tl_bench.data.imagefolder import LOOP


def _images(root: Path, classes: str = "abc", per_class: int = 8, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in classes:
        for j in range(per_class):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{j}.png")


def _bytes_of_splits(ds, root: Path) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    return {name: {hashlib.sha256((root / i).read_bytes()).hexdigest() for i in split.ids}
            for name, split in ds.splits.items()}


def _assert_no_image_in_two_splits(ds, root: Path) -> None:  # type: ignore[no-untyped-def]
    seen = _bytes_of_splits(ds, root)
    assert not (seen["train"] & seen["test"] or seen["val"] & seen["test"] or seen["train"] & seen["val"])
    real = {name: {os.path.realpath(root / i) for i in split.ids} for name, split in ds.splits.items()}
    assert not (real["train"] & real["test"] or real["val"] & real["test"] or real["train"] & real["val"])


def test_a_link_loop_is_left_out_with_one_line_and_lists_nothing_twice(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _images(root)
    os.symlink(".", root / "a" / "loop")  # a/loop/loop/loop/... would list a's 8 images 40 times
    os.symlink("..", root / "b" / "up")  # b/up/a, b/up/b, ...: every class again, under b's label
    os.symlink(".", root / "again")  # a class folder that is the dataset itself
    ds = load_dataset(f"imagefolder:{root}", img_size=8, seed=0)
    assert ds.class_names == ["a", "b", "c"]
    assert len(ds.train) + len(ds.val) + len(ds.test) == 24
    assert sorted(ds.skipped) == sorted(f"{p}/: {LOOP}" for p in ("a/loop", "b/up", "again"))
    _assert_no_image_in_two_splits(ds, root)


def test_one_image_under_two_names_is_one_item_and_the_test_copy_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "split"
    _images(root / "train", per_class=6)
    _images(root / "test", per_class=2, seed=1)
    (root / "train" / "c" / "linked.png").symlink_to(root / "test" / "b" / "1.png")  # a test image, linked
    shutil.copyfile(root / "test" / "c" / "0.png", root / "train" / "c" / "copy.png")  # and copied
    shutil.copyfile(root / "test" / "a" / "0.png", root / "train" / "b" / "0.png")  # over a training image
    ds = load_dataset(f"imagefolder:{root}", img_size=8, seed=0)
    _assert_no_image_in_two_splits(ds, root)
    assert len(ds.test) == 6 and all(i.startswith("test/") for i in ds.test.ids)
    reasons = dict(line.split(": ", 1) for line in ds.skipped)
    assert reasons["train/c/linked.png"] == ("the same file as test/b/1.png, which is kept as class 'b'; this copy "
                                             "labels it 'c' (conflicting labels, duplicate left out)")
    assert reasons["train/c/copy.png"] == "same bytes as test/c/0.png (duplicate left out)"
    # The copies disagree on the class: the line names both, and which one the image keeps.
    assert reasons["train/b/0.png"] == ("same bytes as test/a/0.png, which is kept as class 'a'; this copy labels it "
                                        "'b' (conflicting labels, duplicate left out)")
    assert len(reasons) == 3 and len(ds.train) + len(ds.val) == 17
    # Within one folder too: duplicates are one item, so they cannot be split apart either.
    flat = tmp_path / "flat"
    _images(flat)
    shutil.copyfile(flat / "a" / "0.png", flat / "a" / "twin.png")
    once = load_dataset(f"imagefolder:{flat}", img_size=8, seed=0)
    assert len(once.train) + len(once.val) + len(once.test) == 24
    assert once.skipped == ["a/twin.png: same bytes as a/0.png (duplicate left out)"]
