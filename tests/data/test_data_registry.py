"""The registry: every entry loads offline from files written here; names are checked without loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tl_bench.data import (
    DATASETS,
    DatasetSplits,
    LazyImages,
    Split,
    load_dataset,
    resolve_name,
    resolve_options,
)
from tl_bench.errors import DatasetError


def _name_and_kwargs(key: str, tmp_path: Path, files: Any) -> tuple[str, dict]:
    if key == "digits":
        return key, {}
    if key == "shapes":
        return key, {"num_classes": 3, "n_per_class": 10}
    if key == "imagefolder":
        return f"imagefolder:{files.write_imagefolder(tmp_path / 'folder')}", {}
    files.torchvision[key.split(":", 1)[1]](tmp_path)
    return key, {"root": tmp_path}


@pytest.mark.parametrize("key", list(DATASETS))
def test_every_entry_loads_offline_and_keeps_the_contract(tmp_path: Path, files: Any, key: str) -> None:
    name, kwargs = _name_and_kwargs(key, tmp_path, files)
    ds = load_dataset(name, img_size=24, seed=1, **kwargs)
    assert isinstance(ds, DatasetSplits) and ds.name == name
    assert len(ds.fingerprint) == 16 and int(ds.fingerprint, 16) >= 0
    assert ds.num_classes == len(ds.class_names) >= 2 and isinstance(ds.skipped, list)
    for split in (ds.train, ds.val, ds.test):
        assert isinstance(split, Split) and len(split) > 0
        assert isinstance(split.images, (torch.Tensor, LazyImages))
        assert tuple(split.images.shape) == (len(split), 3, 24, 24) and split.images.dtype == torch.uint8
        assert split.labels.dtype == torch.int64 and len(split.labels) == len(split)
        assert 0 <= int(split.labels.min()) and int(split.labels.max()) < ds.num_classes
        assert len(set(split.ids)) == len(split)
    assert load_dataset(name, img_size=24, seed=1, **kwargs) is ds


@pytest.mark.parametrize(
    "name, entry, target",
    [
        ("digits", "digits", None),
        ("shapes", "shapes", None),
        # folders are not looked at: a missing or relative one resolves; only the first ':' splits
        ("imagefolder:/nowhere/yet", "imagefolder", "/nowhere/yet"),
        ("imagefolder:relative/path", "imagefolder", "relative/path"),
        ("imagefolder:C:/data", "imagefolder", "C:/data"),
        ("torchvision:CIFAR10", "torchvision:CIFAR10", "CIFAR10"),
        ("torchvision:food101", "torchvision:Food101", "Food101"),  # any case, resolved to the registry's spelling
    ],
)
def test_accepted_names(name: str, entry: str, target: str | None) -> None:
    info, found = resolve_name(name)
    assert info is DATASETS[entry] and found == target


@pytest.mark.parametrize(
    "name, words",
    [
        ("", ["empty", "digits, shapes, imagefolder:PATH, torchvision:NAME"]),
        ("mnist", ["unknown dataset 'mnist'", "torchvision:NAME"]),
        ("digit", ["did you mean 'digits'"]),
        ("imagefolder", ["imagefolder:PATH"]),
        ("imagefolder:", ["imagefolder:PATH"]),
        ("torchvision", ["torchvision:NAME", "CIFAR10"]),
        ("torchvision:Imagenet", ["unknown torchvision dataset 'Imagenet'", "Caltech101"]),
        ("digits:extra", ["takes no ':'"]),
    ],
)
def test_rejected_names_say_what_is_accepted(name: str, words: list[str]) -> None:
    with pytest.raises(DatasetError) as err:
        resolve_name(name)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_errors_carry_what_and_accepted_apart() -> None:
    with pytest.raises(DatasetError) as err:
        resolve_name("mnist")
    assert err.value.what == "unknown dataset 'mnist'"
    assert err.value.accepted is not None and err.value.accepted.startswith("digits, shapes, imagefolder:PATH")
    assert str(err.value) == f"{err.value.what}; accepted: {err.value.accepted}"
    with pytest.raises(DatasetError) as err:
        resolve_options(resolve_name("shapes")[0], {"num_classes": 1})
    assert err.value.what == "shapes option num_classes=1 is not accepted"
    assert err.value.accepted == "an integer from 2 to 10"
    assert str(err.value) == "shapes option num_classes=1 is not accepted; use an integer from 2 to 10"


def test_options_are_checked_without_loading() -> None:
    def check(name: str, options: dict[str, Any]) -> None:
        resolve_options(resolve_name(name)[0], options)

    check("shapes", {"num_classes": 5, "data_seed": 2, "size": 48})
    check("imagefolder:/nowhere/yet", {"val_fraction": 0.1, "in_memory": False})
    check("torchvision:DTD", {"partition": 3})
    cases = [
        ("shapes", {"seed": 1}, "'seed'"),  # the split seed is load_dataset's own argument
        ("shapes", {"num_classes": 12}, "num_classes=12"),
        ("torchvision:DTD", {"partition": 0}, "partition=0"),
        ("digits", {"in_memory": True}, "'in_memory'"),
        ("imagefolder:/x", {"in_memory": "yes"}, "in_memory='yes'"),
        ("digits", {"val_fraction": 0}, "val_fraction=0"),
    ]
    for name, options, word in cases:
        with pytest.raises(DatasetError) as err:
            check(name, options)
        assert word in str(err.value) and "\n" not in str(err.value), (name, options)


def test_registry_lists_every_form() -> None:
    forms = {info.form for info in DATASETS.values()}
    assert {"digits", "shapes", "imagefolder:PATH"} <= forms
    required = {"CIFAR10", "CIFAR100", "SVHN", "STL10", "Flowers102", "OxfordIIITPet", "DTD", "EuroSAT", "FGVCAircraft", "Food101", "Caltech101"}
    assert {f"torchvision:{n}" for n in required} <= forms
    assert DATASETS["shapes"].options["num_classes"] == 10
