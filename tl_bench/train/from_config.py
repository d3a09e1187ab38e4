"""train_config: load the data and build the model a config names, then train; setup is timed apart."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import timm
import torch

from tl_bench.config import TrialConfig, TrialResult, Weights
from tl_bench.data import DatasetSplits, load_dataset_for
from tl_bench.data.images import load_interpolation
from tl_bench.models import TransferModel, build_model_for
from tl_bench.train.cache import FeatureCache
from tl_bench.train.trainer import EpochCallback, train_trial


@dataclass
class TrainedModel:
    """What a finished trial leaves besides its result: the model holding the weights that were
    tested, the data it was tested on and the interpolation that data was resized with."""

    model: TransferModel
    data: DatasetSplits
    interpolation: str


# Called once a trial has trained and been tested, before its model is dropped; the caller decides
# whether to keep it. The model holds the weights that were tested: the selected epoch's (with model
# EMA on, the averaged ones, which the trainer leaves in the model).
TrainedCallback = Callable[[TrainedModel, TrialResult], None]


def _interpolation_guess(config: TrialConfig) -> str:
    # The data must be resized before the model (which needs the class count)
    # exists, so start from timm's config of the chosen weights; train_config
    # checks it against the built backbone's data config.
    name = config.backbone
    weights = Weights.parse(config.weights)
    if weights.kind == "timm":
        name = f"{name}.{weights.tag}"
    return load_interpolation(getattr(timm.models.get_pretrained_cfg(name), "interpolation", None))


def build_for(config: TrialConfig, num_classes: int) -> TransferModel:
    """The model ``config`` names, built right after seeding with ``config.seed``.

    Seeding here makes neck and head (and scratch backbone) initialisation a
    function of the seed alone, so cached and uncached trials start equal.
    """
    torch.manual_seed(config.seed)
    return build_model_for(config, num_classes)


def prepare(config: TrialConfig) -> tuple[TransferModel, DatasetSplits, str]:
    """The model ``config`` names, its data resized as the model's weights expect, and that interpolation."""
    interpolation = _interpolation_guess(config)
    data = load_dataset_for(config, interpolation=interpolation)
    model = build_for(config, data.num_classes)
    wanted = load_interpolation(model.backbone.data_config.get("interpolation"))
    if wanted != interpolation:
        data = load_dataset_for(config, interpolation=wanted)
    return model, data, wanted


def train_config(
    config: TrialConfig,
    *,
    on_epoch: EpochCallback | None = None,
    cache: FeatureCache | None = None,
    on_trained: TrainedCallback | None = None,
) -> TrialResult:
    """Load data, build the model and train it; ``setup_time_s`` holds the first two.

    ``on_trained(trained, result)`` gets the tested model after training; a
    trial that stops early (pruned, failed) never reaches it.
    """
    start = time.perf_counter()
    model, data, interpolation = prepare(config)
    setup = time.perf_counter() - start
    result = train_trial(config, model, data, on_epoch=on_epoch, cache=cache)
    result.setup_time_s = setup
    if on_trained is not None:
        on_trained(TrainedModel(model, data, interpolation), result)
    return result


__all__ = ["TrainedCallback", "TrainedModel", "build_for", "prepare", "train_config"]
