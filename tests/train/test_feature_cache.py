from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import tl_bench.train.cache
from tl_bench.train import FeatureCache, FillCost, build_for, train_config, train_trial

# Cached features come from batches of a different size than the image path's
# training batches, so convolutions may round differently: allow float noise
# on losses and one item on accuracies.
LOSS_TOL = 1e-4


def _same_within_noise(a, b, n_val: int, n_test: int) -> None:
    assert len(a.history) == len(b.history)
    for ha, hb in zip(a.history, b.history):
        assert ha["train_loss"] == pytest.approx(hb["train_loss"], abs=LOSS_TOL)
        assert ha["val_loss"] == pytest.approx(hb["val_loss"], abs=LOSS_TOL)
        assert ha["val_acc"] == pytest.approx(hb["val_acc"], abs=1.01 / n_val)
        assert ha["lr"] == hb["lr"]
    assert a.test_acc == pytest.approx(b.test_acc, abs=1.01 / n_test)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_cached_equals_uncached(make_config, digits, head: str) -> None:
    config = make_config(freeze_depth="all", head=head, epochs=3, lr=1e-2)
    cached = train_config(config, cache=FeatureCache(None))
    plain = train_config(config.replace(use_cache=False))
    assert cached.cache_used and not plain.cache_used
    _same_within_noise(cached, plain, len(digits.val), len(digits.test))
    assert cached.best_epoch == plain.best_epoch
    assert cached.flops_train_per_image < plain.flops_train_per_image
    assert cached.params_trainable == plain.params_trainable < plain.params_total


@pytest.mark.parametrize(("backbone", "neck"), [("test_convnext", "timm"), ("test_vit", "cls")])
def test_probes_with_protocol_necks_train_alike_from_the_disk_cache(
    make_config, digits, tmp_path: Path, backbone: str, neck: str
) -> None:
    # the cache holds forward_features (before the neck): timm's pre-logits norm and the class
    # token are read from it on every step, exactly as the image path reads them
    config = make_config(backbone=backbone, neck=neck, freeze_depth="all", epochs=2, lr=1e-2)
    first = train_config(config, cache=FeatureCache(tmp_path))
    again_cache = FeatureCache(tmp_path)
    again = train_config(config, cache=again_cache)
    plain = train_config(config.replace(use_cache=False))
    assert first.cache_used and again.cache_hit and not plain.cache_used
    assert again_cache.stats == {"memory_hits": 0, "disk_hits": 3, "computed": 0}
    # the same values, read back from disk instead of memory: a matrix product may round
    # differently on differently aligned memory, nothing more
    _same_within_noise(again, first, len(digits.val), len(digits.test))
    _same_within_noise(first, plain, len(digits.val), len(digits.test))
    assert first.params_trainable == plain.params_trainable == first.params_head


def test_cache_is_skipped_when_augmenting_or_partly_frozen(make_config) -> None:
    cache = FeatureCache(None)
    assert not train_config(make_config(freeze_depth="all", augment=True, epochs=1), cache=cache).cache_used
    assert not train_config(make_config(freeze_depth=1, epochs=1), cache=cache).cache_used
    assert cache.stats == {"memory_hits": 0, "disk_hits": 0, "computed": 0}


def test_disk_cache_is_reused_by_another_instance(make_config, tmp_path: Path) -> None:
    config = make_config(freeze_depth="all", epochs=2)
    first_cache = FeatureCache(tmp_path)
    first = train_config(config, cache=first_cache)
    assert first_cache.stats["computed"] == 3  # train, val, test
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    assert not list(tmp_path.glob("*.tmp"))

    second_cache = FeatureCache(tmp_path)
    second = train_config(config, cache=second_cache)
    assert second_cache.stats == {"memory_hits": 0, "disk_hits": 3, "computed": 0}
    assert second.history == first.history and second.test_acc == first.test_acc
    assert not first.cache_hit and second.cache_hit
    # The backbone pass is charged to both, as recorded with the entry when the first trial computed it.
    assert second.feature_time_s == first.feature_time_s > 0
    assert second.train_flops_total == first.train_flops_total
    backbone_pass = first.flops_fwd_per_image * 400
    # scratch weights: a second pass over the same images first re-estimated the frozen BatchNorm statistics
    assert first.bn_recalibrated > 0
    assert second.train_flops_total == pytest.approx(second.flops_train_per_image * 800 + 2 * backbone_pass)


def test_heads_share_features_in_memory_but_scratch_seeds_do_not(make_config) -> None:
    cache = FeatureCache(None)
    train_config(make_config(freeze_depth="all", weights="scratch", epochs=1), cache=cache)
    train_config(make_config(freeze_depth="all", head="mlp", epochs=1), cache=cache)
    assert cache.stats == {"memory_hits": 3, "disk_hits": 0, "computed": 3}
    # Another seed initialises another random backbone: its features differ.
    train_config(make_config(freeze_depth="all", seed=1, epochs=1), cache=cache)
    assert cache.stats["computed"] == 6


def test_keys_follow_what_determines_features(make_config, digits) -> None:
    cache = FeatureCache(None)
    config = make_config(freeze_depth="all", epochs=1)
    model = build_for(config, digits.num_classes)
    train_trial(config, model, digits, cache=cache)
    keys = set(cache.keys())
    assert len(keys) == 3
    # Same backbone weights, another image size: new features.
    small = load_digits(img_size=24)
    config24 = config.replace(img_size=24)
    train_trial(config24, build_for(config24, small.num_classes), small, cache=cache)
    assert len(set(cache.keys()) - keys) == 3


def load_digits(img_size: int):
    from tl_bench.data import load_dataset

    return load_dataset("digits", img_size=img_size, train_size=400, val_size=150, seed=0, interpolation="bilinear")


def test_memory_limit_evicts_least_recently_used() -> None:
    cache = FeatureCache(None, max_memory_mb=1.5)
    mb = [torch.zeros(2**18)]  # 1 MiB of float32
    cache.put("a", mb)
    cache.put("b", mb)
    assert "a" not in cache and "b" in cache
    assert cache.get("a") is None


def test_unreadable_disk_entry_is_a_miss_and_gets_replaced(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    (tmp_path / "k.safetensors").write_bytes(b"not a safetensors file")
    cost = FillCost(seconds=1.5, flops=2e9, peak_mb=3.0)
    features, recorded, computed = cache.get_or_compute("k", lambda: ([torch.arange(6.0).view(2, 3)], cost))
    assert computed and recorded == cost
    features, recorded = FeatureCache(tmp_path).get_entry("k")
    assert torch.equal(features[0], torch.arange(6.0).view(2, 3)) and recorded == cost


def test_an_entry_without_a_recorded_cost_is_computed_again(tmp_path: Path) -> None:
    FeatureCache(tmp_path).put("k", [torch.ones(2)])  # written without its cost
    cache = FeatureCache(tmp_path)
    cost = FillCost(seconds=0.5, flops=1.0, peak_mb=0.1)
    _, recorded, computed = cache.get_or_compute("k", lambda: ([torch.ones(2)], cost))
    assert computed and recorded == cost
    assert FeatureCache(tmp_path).get_entry("k")[1] == cost


# Loads cache.py by path: the writers need FeatureCache, not timm and the models.
WRITER = textwrap.dedent(
    """
    import importlib.util, sys, torch
    spec = importlib.util.spec_from_file_location("feature_cache", sys.argv[4])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    cache = module.FeatureCache(sys.argv[1], max_memory_mb=0)
    features = [torch.arange(2**20, dtype=torch.float32).view(1024, 1024), torch.ones(3, 5, dtype=torch.bfloat16)]
    for _ in range(int(sys.argv[2])):
        cache.put("shared", features, {"writer": sys.argv[3]})
    """
)


@pytest.mark.slow
def test_concurrent_writers_of_one_key_never_leave_a_torn_file(tmp_path: Path) -> None:
    source = tl_bench.train.cache.__file__
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "20", str(i), source], stderr=subprocess.PIPE)
        for i in range(2)
    ]
    expected = torch.arange(2**20, dtype=torch.float32).view(1024, 1024)
    reads = 0
    while any(w.poll() is None for w in writers):
        got = FeatureCache(tmp_path).get("shared")
        if got is not None:
            assert torch.equal(got[0], expected)
            assert torch.equal(got[1], torch.ones(3, 5, dtype=torch.bfloat16))
            reads += 1
        time.sleep(0.01)
    for w in writers:
        assert w.wait() == 0, w.stderr.read().decode()
    assert reads > 0
    assert [p.name for p in tmp_path.iterdir()] == ["shared.safetensors"]
