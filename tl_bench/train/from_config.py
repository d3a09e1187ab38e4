"""train_config: load the data and build the model a config names, then train; setup is timed apart."""

from __future__ import annotations

import time

import timm
import torch

from tl_bench.config import TrialConfig, TrialResult, weights_kind
from tl_bench.data import DatasetSplits, load_dataset_for
from tl_bench.data.images import load_interpolation
from tl_bench.models import TransferModel, build_model
from tl_bench.train.cache import FeatureCache
from tl_bench.train.trainer import EpochCallback, train_trial


def _interpolation_guess(config: TrialConfig) -> str:
    # The data must be resized before the model (which needs the class count)
    # exists, so start from timm's config of the chosen weights; train_config
    # checks it against the built backbone's data config.
    name = config.backbone
    if weights_kind(config.weights) == "timm":
        name = f"{name}.{config.weights.removeprefix('timm:')}"
    return load_interpolation(getattr(timm.models.get_pretrained_cfg(name), "interpolation", None))


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


def prepare(config: TrialConfig) -> tuple[TransferModel, DatasetSplits]:
    """The model ``config`` names and its data, resized as the model's weights expect."""
    interpolation = _interpolation_guess(config)
    data = load_dataset_for(config, interpolation=interpolation)
    model = build_for(config, data.num_classes)
    wanted = load_interpolation(model.backbone.data_config.get("interpolation"))
    if wanted != interpolation:
        data = load_dataset_for(config, interpolation=wanted)
    return model, data


def train_config(
    config: TrialConfig,
    *,
    on_epoch: EpochCallback | None = None,
    cache: FeatureCache | None = None,
) -> TrialResult:
    """Load data, build the model and train it; ``setup_time_s`` holds the first two."""
    start = time.perf_counter()
    model, data = prepare(config)
    setup = time.perf_counter() - start
    result = train_trial(config, model, data, on_epoch=on_epoch, cache=cache)
    result.setup_time_s = setup
    return result


__all__ = ["build_for", "prepare", "train_config"]
