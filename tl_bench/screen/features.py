"""Frozen features of one (backbone, weights) candidate, through the same feature cache as probes,
and its backbone's static size.

The features are the backbone's output pooled by the ``gap`` neck (the mean over the feature
map, or over patch tokens for ViTs), fetched by the trainer's own feeder for the candidate's
linear probe: screening a candidate fills the cache entries (with their cost) that a later probe
of it reads, and the other way round. The cache key holds the probe's ``img_size``, so features
taken at a backbone's pretrained input size never stand in for those at the dataset's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tl_bench.config import TrialConfig
from tl_bench.models import count_params, measure_flops
from tl_bench.train import FeatureCache, prepare, resolve_device
from tl_bench.train.features import FeatureFeeder
from tl_bench.train.trainer import feeder_for

Splits = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class CandidateFeatures:
    """What screening reads of one candidate: pooled features and labels per split, and the
    data-free static values a size-ordered ranking uses (they depend on the architecture and the
    input size only, never on the weights' values or the data)."""

    splits: Splits  # {"train": (features, labels), "val": (...)}
    params: float  # the backbone's parameters (neck and head excluded)
    flops: float  # forward FLOPs per image of the probe at ``img_size``: the backbone's, plus 2 * dim * classes of its linear head


def candidate_features(config: TrialConfig, cache: FeatureCache) -> CandidateFeatures:
    """Pooled features and static size of a wholly frozen ``config`` with the gap neck."""
    model, data, _ = prepare(config)
    device = resolve_device(config.device)
    model.to(device)
    flops = measure_flops(model, config.img_size)["flops_fwd_per_image"]
    feeder = feeder_for(config, model, data, device, cache, flops)
    if not isinstance(feeder, FeatureFeeder):
        raise ValueError(f"screening needs a wholly frozen backbone without augmentation, not {config}")
    out = {}
    with torch.no_grad():
        for split in ("train", "val"):
            pooled = model.neck([f.float() for f in feeder.features(split)])
            out[split] = (pooled.cpu().numpy(), feeder.images.labels(split).cpu().numpy())
    return CandidateFeatures(splits=out, params=float(count_params(model)["params_backbone"]), flops=float(flops))


def pooled_features(config: TrialConfig, cache: FeatureCache) -> Splits:
    """``{"train": (features, labels), "val": (...)}`` for a wholly frozen ``config`` with the gap neck."""
    return candidate_features(config, cache).splits


__all__ = ["CandidateFeatures", "Splits", "candidate_features", "pooled_features"]
