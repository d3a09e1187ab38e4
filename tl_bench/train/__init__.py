"""Training a trial: trainer with measured cost, and the frozen-feature cache."""

from __future__ import annotations

from tl_bench.train.cache import FeatureCache, FillCost, feature_key
from tl_bench.train.from_config import TrainedCallback, TrainedModel, build_for, prepare, train_config
from tl_bench.train.trainer import EpochCallback, cache_applies, resolve_device, train_trial

__all__ = [
    "EpochCallback",
    "FeatureCache",
    "FillCost",
    "TrainedCallback",
    "TrainedModel",
    "build_for",
    "cache_applies",
    "feature_key",
    "prepare",
    "resolve_device",
    "train_config",
    "train_trial",
]
