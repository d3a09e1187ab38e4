"""Frozen features of one (backbone, weights) candidate, through the same feature cache as probes.

The features are the backbone's output pooled by the ``gap`` neck (the mean over the feature
map, or over patch tokens for ViTs), fetched by the trainer's own feeder for the candidate's
linear probe: screening a candidate fills the cache entries (with their cost) that a later probe
of it reads, and the other way round.
"""

from __future__ import annotations

import numpy as np
import torch

from tl_bench.config import TrialConfig
from tl_bench.models import measure_flops
from tl_bench.train import FeatureCache, prepare, resolve_device
from tl_bench.train.features import FeatureFeeder
from tl_bench.train.trainer import feeder_for


def pooled_features(config: TrialConfig, cache: FeatureCache) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (features, labels), "val": (...)}`` for a wholly frozen ``config`` with the gap neck."""
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
    return out


__all__ = ["pooled_features"]
