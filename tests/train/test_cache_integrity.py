"""Damaged cache files are computed again, never trained on: feature-cache entries and boundary
activations record the digest of their bytes when written and are checked when read."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tl_bench.train import FeatureCache, FillCost, train_config
from tl_bench.train.boundary_store import BoundaryStore


def damage(path: Path, *, keep_header: bool = True) -> None:
    """Overwrite the data of ``path`` with noise of the same length (a safetensors header stays intact),
    as a bad disk block or a torn copy would; the file's time moves on as with any write."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little") if keep_header else 0
    noise = np.random.default_rng(0).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    data[start:] = noise
    before = path.stat().st_mtime_ns
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before + 10**9, before + 10**9))


def _damaged_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]


def test_a_damaged_feature_cache_entry_is_computed_again_not_trained_on(
    make_config, digits, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(freeze_depth="all", epochs=2, lr=1e-2)
    first = train_config(config, cache=FeatureCache(tmp_path))
    entries = sorted(tmp_path.glob("*.safetensors"))
    assert len(entries) == 3
    for entry in entries:
        damage(entry)

    caplog.set_level(logging.WARNING)
    again_cache = FeatureCache(tmp_path)
    again = train_config(config, cache=again_cache)
    assert again_cache.stats == {"memory_hits": 0, "disk_hits": 0, "computed": 3}
    assert sorted(_damaged_lines(caplog)) == [
        f"feature cache entry {entry} is damaged (its digest does not match); computing it again" for entry in entries]
    assert again.val_acc == pytest.approx(first.val_acc, abs=1.01 / len(digits.val))
    assert again.test_acc == pytest.approx(first.test_acc, abs=1.01 / len(digits.test))

    caplog.clear()  # the rebuilt entries replaced the damaged files
    third_cache = FeatureCache(tmp_path)
    train_config(config, cache=third_cache)
    assert third_cache.stats == {"memory_hits": 0, "disk_hits": 3, "computed": 0}
    assert not _damaged_lines(caplog)


def test_a_truncated_feature_cache_entry_is_a_miss_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    features = [torch.arange(600, dtype=torch.float32).reshape(20, 30)]
    cost = FillCost(seconds=1.0, flops=2.0, peak_mb=3.0)
    FeatureCache(tmp_path).put("k", features, cost=cost)
    path = tmp_path / "k.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        assert FeatureCache(tmp_path).get("k") is None
    assert len(_damaged_lines(caplog)) == 1


def test_a_damaged_boundary_entry_is_filled_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    batches = [torch.full((4, 3, 2, 2), float(i)) for i in range(3)]
    cost = FillCost(seconds=1.0, flops=2.0, peak_mb=3.0)
    BoundaryStore(tmp_path).put("k", iter(batches), lambda: cost, max_mb=10)
    found = BoundaryStore(tmp_path).get("k")
    assert found is not None and torch.equal(found[0], torch.cat(batches))

    damage(tmp_path / "k.bin", keep_header=False)
    caplog.set_level(logging.WARNING)
    assert BoundaryStore(tmp_path).get("k") is None
    assert _damaged_lines(caplog) == [
        f"boundary cache entry {tmp_path / 'k.bin'} is damaged (its digest does not match); filling it again"]
    BoundaryStore(tmp_path).put("k", iter(batches), lambda: cost, max_mb=10)
    refilled = BoundaryStore(tmp_path).get("k")
    assert refilled is not None and torch.equal(refilled[0], torch.cat(batches))
