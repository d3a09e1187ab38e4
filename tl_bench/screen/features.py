"""Frozen features of one (backbone, weights) candidate, through the same feature cache as probes.

The features are the backbone's output pooled by the ``gap`` neck (the mean over the feature
map, or over patch tokens for ViTs), computed with the probe's own cache keys: screening a
candidate fills the cache that a later linear probe of it reads, and the other way round.
"""

from __future__ import annotations

import numpy as np
import torch

from tl_bench.config import TrialConfig
from tl_bench.train import FeatureCache, prepare, resolve_device
from tl_bench.train.batches import ImageFeeder
from tl_bench.train.features import FeatureFeeder
from tl_bench.train.trainer import autocast_for


def pooled_features(config: TrialConfig, cache: FeatureCache) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (features, labels), "val": (...)}`` for a wholly frozen ``config`` with the gap neck."""
    model, data, _ = prepare(config)
    device = resolve_device(config.device)
    model.to(device).eval()
    autocast, precision = autocast_for(device)
    images = ImageFeeder(data, device=device, mean=model.backbone.data_config["mean"],
                         std=model.backbone.data_config["std"], batch_size=config.batch_size,
                         eval_batch_size=max(config.batch_size, min(4 * config.batch_size, 1024)))
    feeder = FeatureFeeder(model, images, config, fingerprint=data.fingerprint, cache=cache, autocast=autocast,
                           precision=precision)
    out = {}
    with torch.no_grad():
        for split in ("train", "val"):
            pooled = model.neck([f.float() for f in feeder.features(split)])
            out[split] = (pooled.cpu().numpy(), feeder.images.labels(split).cpu().numpy())
    return out


__all__ = ["pooled_features"]
