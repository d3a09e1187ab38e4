from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pytest
import torch

from tl_bench.config import TrialConfig

if TYPE_CHECKING:
    from tl_bench.data import DatasetSplits

# Small enough for seconds per trial on two CPU cores, large enough to learn.
DIGITS = dict(dataset="digits", img_size=32, train_size=400, val_size=150, split_seed=0)


def _make_config(**changes: object) -> TrialConfig:
    base = TrialConfig(
        backbone="test_resnet",
        **DIGITS,
        epochs=2,
        batch_size=64,
        lr=3e-3,
        backbone_lr_scale=1.0,
        device="cpu",
        seed=0,
    )
    return base.replace(**changes)


@pytest.fixture(scope="session")
def digits() -> DatasetSplits:
    from tl_bench.data import load_dataset

    return load_dataset(
        "digits",
        img_size=32,
        train_size=DIGITS["train_size"],
        val_size=DIGITS["val_size"],
        seed=0,
        interpolation="bilinear",
    )


@pytest.fixture(scope="session")
def make_config() -> Callable[..., TrialConfig]:
    """A CPU trial of test_resnet on the digits subset above, with ``changes`` applied."""
    return _make_config


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    # The models here are tiny: one intra-op thread is as fast as two, and
    # much faster when other processes share the cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
