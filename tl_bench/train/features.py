"""Batches of cached backbone features, for trials whose whole backbone is frozen.

A frozen backbone in eval mode is a fixed function of its input, so its
output for a split is computed once (or found in the ``FeatureCache``) and
every epoch trains only neck and head on it. Batches follow the same
per-epoch permutation as the image path, so with the same seed both paths
take the same optimisation steps. Computing a split's features is measured
(``FillCost``) and recorded with its cache entry: every trial using the entry
is charged that record, whichever trial computed it.

Here the whole backbone is frozen. A frozen prefix (the first k stages) is
cached at the freeze boundary instead, for the families whose forward is
written out as a chain of calls (``train/boundary.py``).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterator

import timm
import torch

from tl_bench.config import TrialConfig, Weights
from tl_bench.models import TransferModel
from tl_bench.train.batches import ImageFeeder, batch_order, place
from tl_bench.train.bn_stats import BnPass
from tl_bench.train.cache import Features, FeatureCache, FillCost, feature_key, file_digest, tensor_digest
from tl_bench.train.cost import PeakMemory, PhaseTimer, tensors_mb

# Batch of the backbone pass that fills a cache entry: fixed, so that the entry (and the cost
# recorded with it) does not depend on the batch size of whichever trial computed it.
EXTRACT_BATCH = 256


def weights_identity(config: TrialConfig, model: TransferModel) -> dict[str, str]:
    """What pins the backbone's weights: the label, plus the file's content or the values themselves.

    A hub tag names fixed weights; a local file is hashed (a re-trained
    checkpoint under the same name must not reuse stale features); anything
    else, scratch above all, is pinned by the parameter values, since random
    init depends on the RNG state when the model was built.
    """
    identity = {"weights": config.weights}
    path = config.weights_path
    if path is None and os.path.isfile(config.weights):
        path = config.weights  # a bare checkpoint path
    if path is not None:
        identity["weights_file"] = file_digest(path)
    elif not Weights.parse(config.weights).from_hub:
        identity["weights_values"] = tensor_digest(list(model.backbone.state_dict().values()))
    return identity


def cache_key_parts(
    config: TrialConfig, model: TransferModel, images: ImageFeeder, *, fingerprint: str, precision: str
) -> dict[str, Any]:
    """What determines a frozen pass's output besides the split: backbone and its weights, input size,
    data, normalisation, precision, timm's version, recalibrated statistics and the memory format."""
    parts: dict[str, Any] = {
        "backbone": config.backbone,
        **weights_identity(config, model),
        "img_size": config.img_size,
        "dataset": fingerprint,
        "mean": images.mean,
        "std": images.std,
        # how many scales the neck asks the backbone for: one per feature point it returns
        "n_scales": len(model.backbone.feature_dims),
        "precision": precision,
        "timm": timm.__version__,
    }
    if config.recalibrates_bn and model.backbone.frozen_batchnorms():
        # the frozen statistics come from this dataset's training images, not from the weights label
        parts["bn_stats"] = "recalibrate"
    if images.channels_last != (images.device.type == "cuda"):
        # a memory format other than the device's usual one may round differently; the usual one
        # stays out of the key so entries computed before it was a setting stay valid
        parts["channels_last"] = images.channels_last
    return parts


class StoredSplits:
    """What a feeder of stored per-split tensors (cached features, boundary activations) shares: the
    image feeder it stands in front of, which fills entries and still seeds and counts steps, and the
    key of each split's entry."""

    images: ImageFeeder
    _key_parts: dict[str, Any]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def bn_pass(self) -> BnPass:
        return self.images.bn_pass

    def seed(self, seed: int) -> None:
        self.images.seed(seed)

    def steps_per_epoch(self) -> int:
        return self.images.steps_per_epoch()

    def key(self, split: str) -> str:
        return feature_key({**self._key_parts, "split": split, "n_items": len(self.images.splits[split])})


class FeatureFeeder(StoredSplits):
    """Neck-and-head training batches drawn from per-split backbone features."""

    def __init__(
        self,
        model: TransferModel,
        images: ImageFeeder,
        config: TrialConfig,
        *,
        fingerprint: str,
        cache: FeatureCache,
        autocast: Callable[[], AbstractContextManager[Any]],
        precision: str,
        flops_per_image: float,
    ) -> None:
        self.model, self.images, self.cache = model, images, cache
        self.autocast = autocast
        self.batch_size, self.eval_batch_size = images.batch_size, images.eval_batch_size
        self.device = images.device
        self.flops_per_image = flops_per_image  # forward FLOPs per image of the pass that fills an entry
        self._features: dict[str, Features] = {}
        self.computed: set[str] = set()  # splits whose features this trial computed
        self.costs: dict[str, FillCost] = {}  # per split: what computing its features cost, as recorded
        self._key_parts = cache_key_parts(config, model, images, fingerprint=fingerprint, precision=precision)

    def features(self, split: str) -> Features:
        """The split's features on the device, from the cache or computed now."""
        if split not in self._features:
            describe = {**self._key_parts, "split": split}
            stored, cost, computed = self.cache.get_or_compute(self.key(split), lambda: self._measured(split), describe)
            if computed:
                self.computed.add(split)
            self.costs[split] = cost
            self._features[split] = [place(t, self.device) for t in stored]
        return self._features[split]

    def features_mb(self) -> float:
        """Memory held by the features of every split fetched so far, in MiB."""
        return tensors_mb(t for feats in self._features.values() for t in feats)

    def _measured(self, split: str) -> tuple[Features, FillCost]:
        memory, timer = PeakMemory(self.device, self.autocast), PhaseTimer(self.device)
        memory.start()
        with timer("fill"):
            features = self._extract(split)
        flops = self.flops_per_image * len(self.images.splits[split])
        return features, FillCost(seconds=timer.get("fill"), flops=flops, peak_mb=memory.growth_mb())

    @torch.no_grad()
    def _extract(self, split: str) -> Features:
        # no_grad rather than inference_mode: inference tensors could not be
        # saved for backward when a trainable neck consumes them.
        parts: list[Features] = []
        for x, _ in self.images.eval_batches(split, EXTRACT_BATCH):
            with self.autocast():
                parts.append(self.model.extract_feat(x))
        return [torch.cat(scale) for scale in zip(*parts)]

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Features, torch.Tensor]]:
        feats, labels = self.features("train"), self.images.labels("train")
        for idx in batch_order(len(labels), self.batch_size, generator):
            idx_dev = idx.to(feats[0].device)
            yield [f[idx_dev].to(self.device, non_blocking=True) for f in feats], labels[idx.to(labels.device)]

    def eval_batches(self, split: str) -> Iterator[tuple[Features, torch.Tensor]]:
        feats, labels = self.features(split), self.images.labels(split)
        for start in range(0, len(labels), self.eval_batch_size):
            stop = start + self.eval_batch_size
            yield [f[start:stop].to(self.device, non_blocking=True) for f in feats], labels[start:stop]

    def forward(self, model: TransferModel, feats: Features) -> torch.Tensor:
        return model.forward_from_features(feats)

    def step_flops(self, flops: dict[str, float]) -> float:
        """FLOPs per trained image of a step on cached features: neck and head only."""
        return flops["flops_head_train_per_image"]


__all__ = ["EXTRACT_BATCH", "FeatureFeeder", "cache_key_parts", "weights_identity"]
