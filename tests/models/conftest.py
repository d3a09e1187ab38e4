"""Shared settings of the model tests: timm's tiny models at a small input size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

IMG = 32


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # tiny models gain nothing from intra-op threads, and on a busy machine the
    # thread pool's spin-waits cost far more than the compute (25x measured)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(0))
