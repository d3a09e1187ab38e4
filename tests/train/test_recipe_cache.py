"""Recipe fields and the hashes that name cached results: only what changes frozen features changes a key."""

from __future__ import annotations

from tl_bench.config import TrialConfig
from tl_bench.train import train_config
from tl_bench.train.cache import FeatureCache


def test_digest_of_a_config_with_recipe_defaults_is_the_earlier_one() -> None:
    # Values computed before the recipe fields existed (augment was a boolean then): checkpoints named
    # by a config digest must still be found.
    # (backbone_lr_scale was 0.1 for every weights then; scratch now defaults to 1.0, so it is written out.)
    assert TrialConfig(dataset="d", backbone="b", augment=True, backbone_lr_scale=0.1).digest() == "f390ddbedad7a4d4"
    base = TrialConfig(dataset="d", backbone="b")
    assert base.digest() == base.replace(augment=False).digest()
    for change in ({"ema_decay": 0.99}, {"layer_decay": 0.75}, {"precision": "bf16"}, {"augment": "randaug"}):
        assert base.replace(**change).digest() != base.digest()


def test_fields_that_leave_frozen_features_alone_reuse_the_cache(make_config) -> None:
    cache = FeatureCache(None)
    first = train_config(make_config(freeze_depth="all", epochs=1), cache=cache)
    recipe = make_config(freeze_depth="all", epochs=1, ema_decay=0.9, drop_path_rate=0.2, layer_decay=0.7,
                         optimizer="lion", sched="step", label_smoothing=0.1, compile=True)
    second = train_config(recipe, cache=cache)
    assert first.cache_used and second.cache_used
    assert second.cache_hit and cache.stats["computed"] == 3
    assert second.compile_time_s == 0.0  # a cached trial trains neck and head only, uncompiled


def test_precision_changes_the_features_and_their_key(make_config) -> None:
    cache = FeatureCache(None)
    train_config(make_config(freeze_depth="all", epochs=1), cache=cache)
    bf16 = train_config(make_config(freeze_depth="all", epochs=1, precision="bf16"), cache=cache)
    assert bf16.cache_used and not bf16.cache_hit and cache.stats["computed"] == 6


def test_a_memory_format_other_than_the_devices_usual_one_gets_its_own_key(make_config) -> None:
    cache = FeatureCache(None)
    train_config(make_config(freeze_depth="all", epochs=1, channels_last=False), cache=cache)
    usual = train_config(make_config(freeze_depth="all", epochs=1), cache=cache)  # auto: False on CPU
    other = train_config(make_config(freeze_depth="all", epochs=1, channels_last=True), cache=cache)
    assert usual.cache_hit and not other.cache_hit
