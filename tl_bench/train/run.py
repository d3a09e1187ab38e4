"""run_trial: build the model and load the data a config names, then train; setup is timed apart."""

from __future__ import annotations

import time

import timm
import torch

from tl_bench.config import TrialConfig, TrialResult
from tl_bench.data import DatasetSplits, load_dataset
from tl_bench.data.images import INTERPOLATIONS
from tl_bench.data.transforms import interpolation_of
from tl_bench.models import TransferModel, build_model
from tl_bench.train.cache import FeatureCache
from tl_bench.train.trainer import EpochCallback, train_trial


def _interpolation_guess(config: TrialConfig) -> str:
    # The data must be resized before the model (which needs the class count)
    # exists, so start from timm's config of the chosen weights; run_trial
    # checks it against the built backbone's data config.
    name = config.backbone
    if config.weights.startswith("timm:"):
        name = f"{name}.{config.weights.removeprefix('timm:')}"
    cfg = timm.models.get_pretrained_cfg(name)
    interpolation = getattr(cfg, "interpolation", None)
    return interpolation if interpolation in INTERPOLATIONS else "bilinear"


def _load(config: TrialConfig, interpolation: str) -> DatasetSplits:
    return load_dataset(
        config.dataset,
        img_size=config.img_size,
        train_size=config.train_size,
        val_size=config.val_size,
        seed=config.split_seed,
        root=config.data_root,
        download=config.download,
        interpolation=interpolation,
        **config.dataset_options,
    )


def build_for(config: TrialConfig, num_classes: int) -> TransferModel:
    """The model ``config`` names, built right after seeding with ``config.seed``.

    Seeding here makes neck and head (and scratch backbone) initialisation a
    function of the seed alone, so cached and uncached trials start equal.
    """
    torch.manual_seed(config.seed)
    return build_model(
        config.backbone,
        num_classes=num_classes,
        img_size=config.img_size,
        weights=config.weights,
        weights_path=config.weights_path,
        freeze_depth=config.freeze_depth,
        neck=config.neck,
        head=config.head,
        neck_dim=config.neck_dim,
        head_hidden=config.head_hidden,
    )


def run_trial(
    config: TrialConfig,
    *,
    on_epoch: EpochCallback | None = None,
    cache: FeatureCache | None = None,
) -> TrialResult:
    """Load data, build the model and train it; ``setup_time_s`` holds the first two."""
    start = time.perf_counter()
    interpolation = _interpolation_guess(config)
    data = _load(config, interpolation)
    model = build_for(config, data.num_classes)
    wanted = interpolation_of(model.backbone.data_config)
    if wanted != interpolation:
        data = _load(config, wanted)
    setup = time.perf_counter() - start
    result = train_trial(config, model, data, on_epoch=on_epoch, cache=cache)
    result.setup_time_s = setup
    return result


__all__ = ["run_trial", "build_for"]
