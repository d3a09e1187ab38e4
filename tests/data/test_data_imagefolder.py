"""imagefolder:PATH on real files: both layouts, unreadable files, bad folders, fingerprints."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tl_bench.data import clear_cache, load_dataset
from tl_bench.errors import DatasetError

VALUES = {"cat": 30, "dog": 50, "fox": 70}  # conftest.value_of(0..2)


def test_one_folder_per_class(tmp_path: Path, files: Any) -> None:
    root = files.write_imagefolder(tmp_path / "pets")
    ds = load_dataset(f"imagefolder:{root}", img_size=20, seed=0)
    assert ds.class_names == ["cat", "dog", "fox"] and ds.num_classes == 3
    assert len(ds.train) + len(ds.val) + len(ds.test) == 18 and ds.skipped == []
    assert ds.train.images.shape[1:] == (3, 20, 20)
    for split in ds.splits.values():  # stratified: every class, as evenly as the sizes allow
        counts = split.class_counts(3)
        assert min(counts) >= 1 and max(counts) - min(counts) <= 1, (split.name, counts)
    files.assert_labels_match_pixels(ds, VALUES)
    assert all(i.split("/")[0] in VALUES for i in ds.train.ids)


def test_train_val_test_folders(tmp_path: Path, files: Any) -> None:
    root = tmp_path / "split"
    files.write_imagefolder(root / "train", per_class=4)
    files.write_imagefolder(root / "val", per_class=1, mark_from=10)
    files.write_imagefolder(root / "test", per_class=2, mark_from=20)
    ds = load_dataset(f"imagefolder:{root}", img_size=16)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 3, 6)
    assert all(i.startswith("test/") for i in ds.test.ids) and all(i.startswith("val/") for i in ds.val.ids)
    files.assert_labels_match_pixels(ds, VALUES)
    limited = load_dataset(f"imagefolder:{root}", img_size=16, train_size=6)
    assert limited.train.class_counts(3) == [2, 2, 2] and limited.test.ids == ds.test.ids


def test_train_and_test_folders_carve_validation_from_train(tmp_path: Path, files: Any) -> None:
    root = tmp_path / "split"
    files.write_imagefolder(root / "train", per_class=5)
    files.write_imagefolder(root / "test", per_class=2, mark_from=20)
    ds = load_dataset(f"imagefolder:{root}", img_size=16)
    assert len(ds.test) == 6 and len(ds.train) + len(ds.val) == 15
    assert all(i.startswith("train/") for i in ds.val.ids + ds.train.ids)


def test_unreadable_files_are_skipped_and_never_labelled(tmp_path: Path, files: Any) -> None:
    root = files.write_imagefolder(tmp_path / "pets")
    good = (root / "cat" / "cat_1.jpg").read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "dog" / "notes.txt").write_text("not a picture")
    (root / "dog" / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "loose.jpg").write_bytes(good)
    (root / "fox" / ".DS_Store").write_bytes(b"\x00\x01")
    ds = load_dataset(f"imagefolder:{root}", img_size=16)
    reasons = dict(line.split(": ", 1) for line in ds.skipped)
    assert set(reasons) == {"cat/truncated.jpg", "dog/notes.txt", "dog/fake.png", "loose.jpg"}
    assert reasons["dog/notes.txt"] == "not an image" and reasons["cat/truncated.jpg"].startswith("corrupt image")
    assert reasons["loose.jpg"] == "not inside a class folder"
    all_ids = {i for split in ds.splits.values() for i in split.ids}
    assert len(all_ids) == 18 and not all_ids & set(reasons)
    files.assert_labels_match_pixels(ds, VALUES)


def test_lazy_and_in_memory_give_the_same_items(tmp_path: Path, files: Any) -> None:
    root = files.write_imagefolder(tmp_path / "pets")
    held = load_dataset(f"imagefolder:{root}", img_size=16, in_memory=True)
    lazy = load_dataset(f"imagefolder:{root}", img_size=16, in_memory=False)
    assert held.train.in_memory and not lazy.train.in_memory
    assert lazy.fingerprint == held.fingerprint and lazy.train.ids == held.train.ids
    assert lazy.train.images.shape == held.train.images.shape
    assert torch.equal(lazy.train.images[list(range(len(lazy.train)))], held.train.images)
    assert torch.equal(lazy.train[2][0], held.train.images[2])


def test_small_splits_of_a_large_set_are_held_in_memory(tmp_path: Path, files: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tl_bench.data import source

    root = files.write_imagefolder(tmp_path / "pets")  # 18 images: test 5, val 3, train 10
    monkeypatch.setattr(source, "IN_MEMORY_LIMIT_BYTES", 10 * 3 * 16 * 16)  # room for 10 images
    ds = load_dataset(f"imagefolder:{root}", img_size=16)
    assert ds.train.in_memory and not ds.val.in_memory and not ds.test.in_memory
    files.assert_labels_match_pixels(ds, VALUES)
    lazy = load_dataset(f"imagefolder:{root}", img_size=16, in_memory=False)
    assert not lazy.train.in_memory and torch.equal(lazy.train.images[list(range(10))], ds.train.images)


def test_fingerprint_follows_the_files_not_their_location(tmp_path: Path, files: Any) -> None:
    root = files.write_imagefolder(tmp_path / "a" / "pets")
    first = load_dataset(f"imagefolder:{root}", img_size=16).fingerprint
    copy = tmp_path / "b" / "pets"
    shutil.copytree(root, copy)
    assert load_dataset(f"imagefolder:{copy}", img_size=16).fingerprint == first

    files.write_png(copy / "dog" / "dog_0.png", 4)  # same name and size, other pixels
    clear_cache()
    changed_pixels = load_dataset(f"imagefolder:{copy}", img_size=16).fingerprint
    shutil.move(copy / "dog" / "dog_0.png", copy / "fox" / "dog_0.png")  # relabelled
    clear_cache()
    relabelled = load_dataset(f"imagefolder:{copy}", img_size=16).fingerprint
    files.write_jpeg(copy / "fox" / "extra.jpg", 2)
    clear_cache()
    added = load_dataset(f"imagefolder:{copy}", img_size=16).fingerprint
    assert len({first, changed_pixels, relabelled, added}) == 4


def _bad_folder(tmp_path: Path, case: str, files: Any) -> Path:
    root = tmp_path / "data"
    if case == "missing":
        return root
    if case == "file":
        root.write_text("x")
    elif case == "empty":
        root.mkdir()
    elif case == "single class":
        files.write_imagefolder(root, classes=("cat",))
    elif case == "not images":
        for name in ("cat", "dog"):
            (root / name).mkdir(parents=True)
            (root / name / "a.txt").write_text("text")
    elif case == "class without readable images":
        files.write_imagefolder(root, classes=("cat", "dog"))
        (root / "fox").mkdir()
        (root / "fox" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    elif case == "train without test":
        files.write_imagefolder(root / "train")
    elif case == "test class not in train":
        files.write_imagefolder(root / "train", classes=("cat", "dog"))
        files.write_imagefolder(root / "test", classes=("cat", "emu"))
    elif case == "files but no class folders":
        root.mkdir()
        files.write_jpeg(root / "a.jpg", 0)
    return root


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing", ["does not exist", "one sub-folder per class"]),
        ("file", ["is a file"]),
        ("empty", ["is empty"]),
        ("single class", ["single class", "'cat'", "at least 2"]),
        ("not images", ["no readable images", "not an image"]),
        ("class without readable images", ["'fox'", "no readable images"]),
        ("train without test", ["no test/"]),
        ("test class not in train", ["emu", "train/"]),
        ("files but no class folders", ["no class folders"]),
    ],
)
def test_bad_folders_raise_one_line(tmp_path: Path, case: str, words: list[str], files: Any) -> None:
    root = _bad_folder(tmp_path, case, files)
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{root}", img_size=16)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
