"""An img_size whose one batch cannot fit in this machine's memory is refused when the study file is
read, in one line naming the field and the largest size accepted here (was: 90 GB asked for, then a
traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tl_bench.data.load import MAX_IMG_SIZE
from tl_bench.errors import SpecError
from tl_bench.spec import parse_spec
from tl_bench.spec.memory_bound import max_img_size, training_memory_bytes


def _study(img_size: int, batch_size: int, **extra: Any) -> dict[str, Any]:
    return {"name": "big", "datasets": [{"name": "digits", "img_size": img_size}],
            "space": {"backbones": ["test_resnet"]}, "fixed": {"batch_size": batch_size, "device": "cpu"},
            "budget": {"n_trials": 1}, **extra}


def _largest(batch_size: int) -> int:
    return max_img_size(batch_size, training_memory_bytes("cpu")[0], MAX_IMG_SIZE)


def test_the_largest_size_whose_batch_fits_is_accepted_and_one_more_is_refused(tmp_path: Path) -> None:
    batch = 4096  # large enough that the bound falls below the resize limit on any machine
    largest = _largest(batch)
    assert 8 <= largest < MAX_IMG_SIZE
    parse_spec(_study(largest, batch), source=tmp_path / "big.yaml")
    with pytest.raises(SpecError) as caught:
        parse_spec(_study(largest + 1, batch), source=tmp_path / "big.yaml")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'big.yaml'}: datasets[0].img_size: img_size {largest + 1} needs at least ")
    assert message.endswith(f"; accepted: at most {largest} with batch_size {batch}") and "\n" not in message


def test_the_largest_searched_batch_size_counts(tmp_path: Path) -> None:
    study = _study(_largest(4096) + 1, 64)
    del study["fixed"]["batch_size"]
    study["space"]["batch_size"] = [16, 4096]
    with pytest.raises(SpecError, match=r"datasets\[0\]\.img_size: .* with batch_size 4096$"):
        parse_spec(study, source=tmp_path / "big.yaml")


def test_a_size_above_the_resize_limit_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=rf"datasets\[0\]\.img_size: img_size {MAX_IMG_SIZE + 1} is above the largest "
                                        r"size images are resized to; accepted: at most \d+ here \(batch_size 1\)$"):
        parse_spec(_study(MAX_IMG_SIZE + 1, 1), source=tmp_path / "big.yaml")


def test_a_pretraining_source_is_bounded_too(tmp_path: Path) -> None:
    pretrain = {"shapes": {"dataset": {"name": "shapes", "img_size": _largest(4096) + 1}, "batch_size": 4096}}
    study = _study(32, 64, pretrain=pretrain)
    study["space"]["backbones"] = [{"name": "test_resnet", "weights": ["local:shapes"]}]
    with pytest.raises(SpecError, match=r"pretrain\.shapes\.dataset\.img_size: img_size \d+ needs at least"):
        parse_spec(study, source=tmp_path / "big.yaml")
