from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import torch

from tl_bench.train import FeatureCache, build_for, train_config
from tl_bench.train.boundary import BoundaryCut, plan_cut
from tl_bench.train.boundary_store import BoundaryStore
from tl_bench.train.cache import FillCost

from .test_feature_cache import _same_within_noise

BOUNDARY_LOG = "tl_bench.train.boundary"


@pytest.mark.parametrize(
    ("backbone", "depth"),
    [("test_resnet", 3), ("test_convnext", 2), ("test_efficientnet", 4), ("test_vit", 3)],
)
def test_boundary_cached_equals_uncached(make_config, digits, backbone: str, depth: int) -> None:
    config = make_config(backbone=backbone, freeze_depth=depth, epochs=3, lr=1e-2)
    cached = train_config(config, cache=FeatureCache(None))
    plain = train_config(config.replace(use_cache=False))
    # cache_used names the whole-backbone feature cache; boundary_cached the freeze-boundary one
    assert cached.boundary_cached == depth and not cached.cache_used
    assert plain.boundary_cached == 0 and not plain.cache_used
    _same_within_noise(cached, plain, len(digits.val), len(digits.test))
    assert cached.best_epoch == plain.best_epoch
    # a step from the boundary skips the frozen stages' forward; the same parameters train
    assert cached.flops_train_per_image < plain.flops_train_per_image
    assert cached.params_trainable == plain.params_trainable


def test_second_trial_finds_the_entry_and_is_charged_the_same(make_config, tmp_path: Path) -> None:
    config = make_config(freeze_depth=4, epochs=2)
    first_cache = FeatureCache(tmp_path)
    first = train_config(config, cache=first_cache)
    assert first_cache.boundary.stats == {"hits": 0, "computed": 3, "evicted": 0}
    assert len(list((tmp_path / "boundary").glob("*.bin"))) == 3
    assert not list((tmp_path / "boundary").glob("*.tmp"))

    second_cache = FeatureCache(tmp_path)  # another instance: the entries come from disk
    second = train_config(config, cache=second_cache)
    assert second_cache.boundary.stats == {"hits": 3, "computed": 0, "evicted": 0}
    assert not first.cache_hit and second.cache_hit
    assert second.history == first.history and second.test_acc == first.test_acc
    # the frozen pass is charged to both, as recorded when the first trial filled the entry
    assert second.feature_time_s == first.feature_time_s > 0
    assert second.train_flops_total == first.train_flops_total
    assert second.train_time_s >= second.feature_time_s


def test_another_depth_is_another_entry(make_config) -> None:
    cache = FeatureCache(None)
    train_config(make_config(freeze_depth=3, epochs=1), cache=cache)
    train_config(make_config(freeze_depth=4, epochs=1), cache=cache)
    assert cache.boundary.stats["computed"] == 6


def test_over_the_bound_trains_uncached_with_the_reason(make_config, digits, caplog) -> None:
    config = make_config(freeze_depth=2, epochs=2, boundary_cache_mb=1)
    cache = FeatureCache(None)
    with caplog.at_level(logging.WARNING, logger=BOUNDARY_LOG):
        result = train_config(config, cache=cache)
    assert result.boundary_cached == 0 and not result.cache_used
    assert cache.boundary.stats["computed"] == 0
    assert any("over boundary_cache_mb = 1" in r.getMessage() for r in caplog.records)
    plain = train_config(config.replace(use_cache=False))
    assert result.history == plain.history
    # the bound is a runtime setting: the same trial, whatever the bound
    assert config.digest() == config.replace(boundary_cache_mb=2048).digest()


def test_augmented_trials_have_no_boundary_cache(make_config) -> None:
    cache = FeatureCache(None)
    result = train_config(make_config(freeze_depth=3, augment="light", epochs=1), cache=cache)
    assert result.boundary_cached == 0 and not result.cache_used
    assert cache.boundary.stats["computed"] == 0


def test_lora_in_the_frozen_stages_has_no_boundary_cache(make_config, caplog) -> None:
    cache = FeatureCache(None)
    with caplog.at_level(logging.WARNING, logger=BOUNDARY_LOG):
        result = train_config(make_config(freeze_depth=3, adaptation="lora", epochs=1), cache=cache)
    assert result.boundary_cached == 0 and not result.cache_used
    assert cache.boundary.stats["computed"] == 0
    assert any("adaptation 'lora'" in r.getMessage() for r in caplog.records)


def _cut(make_config, digits, **changes) -> BoundaryCut | str:
    model = build_for(make_config(**changes), digits.num_classes)
    return plan_cut(model, contextlib.nullcontext)


def test_a_vit_is_cut_after_its_embedding_and_prefix_tokens(make_config, digits) -> None:
    cut = _cut(make_config, digits, backbone="test_vit", freeze_depth=1)
    assert isinstance(cut, BoundaryCut)
    assert [s.module for s in cut.frozen] == ["patch_embed", "_pos_embed", "patch_drop", "norm_pre"]
    assert cut.rest[0] == "blocks.0" and cut.rest[-1] == "norm"
    vit = build_for(make_config(backbone="test_vit"), digits.num_classes).backbone.model
    # the tokens the first block reads: prefix tokens and position embedding already in
    assert cut.item_shape == (vit.num_prefix_tokens + vit.patch_embed.num_patches, vit.embed_dim)


def test_a_family_not_written_out_falls_back_with_its_reason(make_config, digits) -> None:
    reason = _cut(make_config, digits, backbone="test_byobnet", freeze_depth=2)
    assert isinstance(reason, str) and "not a chain of calls" in reason


def test_store_evicts_the_least_recently_used_within_its_bound(tmp_path: Path) -> None:
    store = BoundaryStore(tmp_path)
    cost = FillCost(seconds=0.1, flops=1.0, peak_mb=0.0)
    mib = torch.zeros(2**18)  # 1 MiB of float32 per entry
    for key in ("a", "b"):
        store.put(key, iter([mib[:2**17], mib[2**17:]]), lambda: cost, max_mb=2.5)
    store.get("a")  # a is used again: b gives way first
    tensor, recorded = store.put("c", iter([mib]), lambda: cost, max_mb=2.5)
    assert store.get("b") is None and store.get("a") is not None
    assert tensor.shape == (2**18,) and recorded == cost and store.disk_mb() <= 2.5
