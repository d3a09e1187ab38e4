"""Frozen BatchNorm of random weights gets its statistics from the target's training images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tl_bench.models import save_backbone_checkpoint
from tl_bench.train import FeatureCache, build_for, train_config, train_trial
from tl_bench.train.features import FeatureFeeder
from tl_bench.train.trainer import feeder_for


def _frozen_stats(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.running_mean.clone(), m.running_var.clone()) for m in model.backbone.frozen_batchnorms()]


def _pooled_std(config, digits) -> float:
    model = build_for(config, digits.num_classes)
    feeder = feeder_for(config, model, digits, torch.device("cpu"), FeatureCache(None), 0.0)
    assert isinstance(feeder, FeatureFeeder)
    pooled = model.neck([f.float() for f in feeder.features("train")])
    return float(pooled.std(dim=0).mean())


def test_scratch_probe_features_no_longer_collapse(make_config, digits) -> None:
    kept = _pooled_std(make_config(freeze_depth="all", bn_stats="keep"), digits)
    recalibrated = _pooled_std(make_config(freeze_depth="all"), digits)  # auto: scratch recalibrates
    # init statistics (mean 0, variance 1) squash a random backbone's features; its own statistics do not
    assert recalibrated > 5 * kept


def test_pass_touches_only_frozen_layers_and_is_recorded(make_config, digits) -> None:
    config = make_config(freeze_depth=2, epochs=1)
    model = build_for(config, digits.num_classes)
    frozen = model.backbone.frozen_batchnorms()
    assert frozen and all(torch.equal(m.running_var, torch.ones_like(m.running_var)) for m in frozen)
    trainable_before = {n: b.clone() for n, b in model.backbone.named_buffers() if "running_mean" in n}
    result = train_trial(config, model, digits)
    assert result.bn_recalibrated == len(frozen)
    assert 0 < result.bn_pass_time_s <= result.train_time_s
    for layer in frozen:
        assert not torch.allclose(layer.running_var, torch.ones_like(layer.running_var))
        assert not layer.training and layer.momentum == 0.1  # left as training expects it
    # the trainable stages moved their statistics by training, the frozen ones kept the pass's
    moved = {n for n, b in model.backbone.named_buffers() if "running_mean" in n and not torch.equal(b, trainable_before[n])}
    assert len(moved) == len(trainable_before)


def test_pass_is_deterministic_whatever_the_trial_batch(make_config, digits) -> None:
    stats = []
    for batch_size in (32, 128):
        config = make_config(freeze_depth="all", batch_size=batch_size, epochs=1)
        model = build_for(config, digits.num_classes)
        feeder_for(config, model, digits, torch.device("cpu"), None, 0.0)
        stats.append(_frozen_stats(model))
    for (mean_a, var_a), (mean_b, var_b) in zip(*stats):
        assert torch.equal(mean_a, mean_b) and torch.equal(var_a, var_b)


def test_keep_leaves_statistics_and_a_fully_trained_backbone_has_nothing_to_do(make_config, digits) -> None:
    kept = train_trial(cfg := make_config(freeze_depth="all", bn_stats="keep", epochs=1),
                       build_for(cfg, digits.num_classes), digits)
    assert kept.bn_recalibrated == 0 and kept.bn_pass_time_s == 0.0
    full = train_trial(cfg := make_config(freeze_depth=0, epochs=1), build_for(cfg, digits.num_classes), digits)
    assert full.bn_recalibrated == 0


def test_cached_equals_uncached_after_the_pass(make_config, digits) -> None:
    config = make_config(freeze_depth="all", epochs=2, lr=1e-2)
    cached = train_config(config, cache=FeatureCache(None))
    plain = train_config(config.replace(use_cache=False))
    assert cached.cache_used and not plain.cache_used
    assert cached.bn_recalibrated == plain.bn_recalibrated > 0
    assert cached.val_acc == pytest.approx(plain.val_acc, abs=1.01 / len(digits.val))
    assert cached.test_acc == pytest.approx(plain.test_acc, abs=1.01 / len(digits.test))


def test_checkpoint_weights_keep_by_default_and_recalibrate_when_asked(make_config, digits, tmp_path: Path) -> None:
    source = build_for(make_config(), digits.num_classes)
    for layer in source.backbone.model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.fill_(0.5)  # statistics of some other data: the file's, to keep or replace
    path = save_backbone_checkpoint(source.backbone, tmp_path / "source.safetensors")
    cache = FeatureCache(None)
    results = {}
    for mode in ("auto", "recalibrate"):
        config = make_config(weights=str(path), freeze_depth="all", bn_stats=mode, epochs=1)
        model = build_for(config, digits.num_classes)
        results[mode] = train_trial(config, model, digits, cache=cache)
        means = [float(m.running_mean.mean()) for m in model.backbone.frozen_batchnorms()]
        assert (means[0] == 0.5) == (mode == "auto")
    assert results["auto"].bn_recalibrated == 0 < results["recalibrate"].bn_recalibrated
    # another frozen function, another cache entry
    assert cache.stats["computed"] == 6
