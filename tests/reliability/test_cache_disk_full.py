"""A full cache disk (a small tmpfs that a file fills): the optional disk copies of feature-cache entries
are skipped with one line, the entries stay in memory and trials train and finish as usual."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from fault_support import fill_disk, small_disk
from tl_bench.config import TrialConfig
from tl_bench.train import FeatureCache, train_config

CONFIG = TrialConfig(dataset="digits", img_size=32, train_size=200, val_size=100, backbone="test_resnet",
                     freeze_depth="all", epochs=1, batch_size=64, lr=1e-2, device="cpu", seed=0)


@pytest.fixture(autouse=True)
def _one_thread():
    # a tiny model: one intra-op thread is as fast as two, and much faster on shared cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_full_cache_disk_skips_the_disk_copy_and_the_trials_finish(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "disk", 4) as disk:
        root = disk / "cache"
        root.mkdir()
        fill_disk(disk)
        caplog.set_level(logging.WARNING)
        cache = FeatureCache(root)
        first = train_config(CONFIG, cache=cache)
        second = train_config(CONFIG.replace(lr=3e-3), cache=cache)  # same features: found in memory
        assert first.cache_used and second.cache_hit
        assert cache.stats == {"memory_hits": 3, "disk_hits": 0, "computed": 3}
        assert sorted(p.name for p in root.iterdir()) == []  # no entry, no temporary file left behind
    lines = [r.getMessage() for r in caplog.records if "feature cache" in r.getMessage()]
    assert lines == [f"feature cache: entries are kept in memory only, their disk copies under {root} are skipped "
                     "(No space left on device)"]
