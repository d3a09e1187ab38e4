"""train_trial: one combination trained, validated every epoch and tested once.

The test split is only read after the last epoch, on the weights that the
config's ``select`` rule chose from validation alone. Cost is measured
around the phases it names: training and evaluation. With the feature cache,
the backbone pass that computed a split's features is added to its phase as
recorded with the cache entry (``FillCost``), so a trial that found the entry
and the trial that computed it are charged the same. A partly frozen backbone
is cached at its freeze boundary where the cut is proven (``train/boundary.py``),
charged the same way.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.data import DatasetSplits
from tl_bench.errors import TrainingSetupError
from tl_bench.models import TransferModel, adapter_mb, count_params, measure_flops
from tl_bench.train.augment import augment_for
from tl_bench.train.batches import ImageFeeder
from tl_bench.train.bn_stats import PASS_BATCH, BnPass, recalibrate_frozen_bn
from tl_bench.train.boundary import BoundaryFeeder, boundary_applies, log_fallback, plan_cut
from tl_bench.train.cache import FeatureCache
from tl_bench.train.cost import PeakMemory, PhaseTimer, model_mb
from tl_bench.train.evaluate import evaluate
from tl_bench.train.execution import Execution, autocast_for, compile_model, resolve_execution
from tl_bench.train.features import FeatureFeeder
from tl_bench.train.recipe import build_recipe
from tl_bench.train.serving import serving_latency
from tl_bench.train.epoch_runner import EpochRunner

EpochCallback = Callable[[int, dict[str, float]], None]
CachedFeeder = (FeatureFeeder, BoundaryFeeder)  # feeders whose frozen pass ran once, charged as recorded


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; other names go to torch as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError(
            f"device {name!r} asked for but CUDA is not available", "'auto' or 'cpu'", lead="; use "
        )
    return device


def cache_applies(config: TrialConfig, model: TransferModel) -> bool:
    """Features can be cached when nothing before the neck trains or sees random augmentation,
    and images are not mixed (mixup and cutmix mix images, not features)."""
    return bool(config.use_cache and model.backbone.fully_frozen and config.augment == "none" and not config.mixes)


def train_trial(
    config: TrialConfig,
    model: TransferModel,
    data: DatasetSplits,
    *,
    on_epoch: EpochCallback | None = None,
    cache: FeatureCache | None = None,
) -> TrialResult:
    """Train ``model`` on ``data`` as ``config`` says and return what was measured.

    ``on_epoch(epoch, metrics)`` runs after every epoch (1-based) with
    ``train_loss``, ``val_acc``, ``val_loss``, ``lr`` and, with at least five
    classes, ``val_top5``; with the training cost so far (``elapsed_train_s``,
    ``elapsed_train_flops``) and the costs fixed before training
    (``params_trainable``, ``adapter_mb``, ``latency_ms``, ``infer_ips``), which
    a cost-aware pruner reads; whatever it raises propagates and ends the trial.
    A non-finite training loss raises ``NonFiniteLossError`` with the epoch
    and the 1-based step within it. The training RNG (neck/head dropout,
    shuffling, augmentation) is seeded from ``config.seed`` here; the weights
    are whatever the caller built (``train_config`` seeds before building).
    """
    if config.epochs < 1:
        raise TrainingSetupError(f"epochs must be at least 1, got {config.epochs}")
    device = resolve_device(config.device)
    execution = resolve_execution(config, device)
    autocast = execution.autocast
    model.to(device)
    if execution.channels_last:
        model.to(memory_format=torch.channels_last)
    sizes = count_params(model)
    flops = measure_flops(model, config.img_size)

    # Cached features are fetched (or computed, and recorded with their entry) before the
    # measurement starts; what computing them cost is added from the record below.
    feeder = feeder_for(config, model, data, device, cache, flops["flops_fwd_per_image"], execution)
    use_cache = isinstance(feeder, CachedFeeder)
    served = serving_latency(config, model, execution, data.num_classes)  # the architecture's, before the peak
    # what a trial costs besides time, known before it trains: a cost-aware pruner reads them per epoch
    fixed_costs = {"params_trainable": float(sizes["params_trainable"]), "latency_ms": served.latency_ms,
                   "infer_ips": served.infer_ips,
                   "adapter_mb": adapter_mb(model, bn_recalibrated=feeder.bn_pass.layers > 0)}
    memory, timer = PeakMemory(device, autocast), PhaseTimer(device)
    memory.start()

    recipe = build_recipe(config, model, model.backbone, execution,
                          steps_per_epoch=feeder.steps_per_epoch(), num_classes=data.num_classes)
    runner = EpochRunner(model, feeder, recipe, autocast, device)
    compile_s = 0.0
    if config.compile and not use_cache:  # a cached trial trains from its cache's tensors, uncompiled
        first, _ = next(feeder.train_batches(torch.Generator().manual_seed(config.seed)))
        compile_s = compile_model(model, first, autocast, device)
    validated = recipe.eval_model(model)  # what validation reads each epoch: the model, or its EMA

    def forward_with(network: torch.nn.Module) -> Callable[[Any], torch.Tensor]:
        return lambda inputs: feeder.forward(network, inputs)

    # Seeded after all setup, so cached and uncached trials draw the same stream.
    torch.manual_seed(config.seed)
    feeder.seed(config.seed)
    recipe.mixer.seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, images_seen = 0, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        with timer("train"):
            train_loss, lr, seen = runner.epoch(epoch, shuffle)
        images_seen += seen
        model.eval()
        with timer("eval"):
            val = evaluate(forward_with(validated), feeder.eval_batches("val"), data.num_classes, autocast=autocast)
        metrics = {"train_loss": train_loss, "val_acc": val["acc"], "val_loss": val["loss"], "lr": lr}
        if "top5" in val:
            metrics["val_top5"] = val["top5"]
        history.append({"epoch": float(epoch), **metrics})
        # the training cost so far, charged as the trial's train_time_s and train_flops_total are
        metrics["elapsed_train_s"] = timer.get("train") + feeder.bn_pass.seconds + _feature_seconds(feeder)
        metrics["elapsed_train_flops"] = (_training_flops(flops, feeder, images_seen)[1]
                                          + flops["flops_fwd_per_image"] * feeder.bn_pass.images)
        recipe.schedule.step_epoch(epoch, val["loss"])
        if config.select == "last" or _improves(metrics, history, best_epoch):
            best_epoch = epoch
            if config.select == "best_val" and epoch < config.epochs:
                best_state = runner.snapshot(validated)
        if on_epoch is not None:
            on_epoch(epoch, {**metrics, **fixed_costs})

    if best_epoch != config.epochs and best_state is not None:
        model.load_state_dict(best_state, strict=False)
    elif validated is not model:
        model.load_state_dict(runner.snapshot(validated), strict=False)
    # From here the model holds the weights that were selected (the EMA's when it is on).
    with timer("eval"):
        test = evaluate(forward_with(model), feeder.eval_batches("test"), data.num_classes, autocast=autocast,
                        per_class=True)
    growth_mb = memory.growth_mb()

    train_flops, total_flops = _training_flops(flops, feeder, images_seen)
    bn_pass: BnPass = feeder.bn_pass
    total_flops += flops["flops_fwd_per_image"] * bn_pass.images
    chosen = history[best_epoch - 1]
    train_time, eval_time, feature_time = timer.get("train") + bn_pass.seconds, timer.get("eval"), 0.0
    if isinstance(feeder, CachedFeeder):
        costs = feeder.costs
        feature_time = costs["train"].seconds
        train_time += feature_time
        eval_time += costs["val"].seconds + costs["test"].seconds
        # Training held every split's features; each backbone pass that made them peaked on its own.
        growth_mb = max(feeder.features_mb() + growth_mb, *(cost.peak_mb for cost in costs.values()))
    return TrialResult(
        val_acc=chosen["val_acc"],
        test_acc=test["acc"],
        val_loss=chosen["val_loss"],
        val_top5=chosen.get("val_top5"),
        test_balanced_acc=test["balanced_acc"],
        test_per_class_acc=test["per_class_acc"],
        best_epoch=best_epoch,
        epochs_run=len(history),
        history=history,
        train_time_s=train_time,
        eval_time_s=eval_time,
        feature_time_s=feature_time,
        train_throughput_ips=images_seen / train_time if train_time > 0 else 0.0,
        flops_fwd_per_image=float(flops["flops_fwd_per_image"]),
        flops_train_per_image=float(train_flops),
        train_flops_total=float(total_flops),
        peak_mem_mb=model_mb(model) + growth_mb,
        params_total=int(sizes["params_total"]),
        params_trainable=int(sizes["params_trainable"]),
        params_backbone=int(sizes["params_backbone"]),
        params_neck=int(sizes["params_neck"]),
        params_head=int(sizes["params_head"]),
        n_stages=int(model.backbone.n_stages),
        trainable_fraction=float(sizes["trainable_fraction"]),
        adapter_mb=fixed_costs["adapter_mb"],
        latency_ms=served.latency_ms,
        infer_ips=served.infer_ips,
        latency_cv=max(served.cv),
        bn_recalibrated=bn_pass.layers,
        bn_pass_time_s=bn_pass.seconds,
        cache_used=isinstance(feeder, FeatureFeeder),  # the whole backbone's features; boundary_cached says the other
        cache_hit=use_cache and "train" not in feeder.computed,
        boundary_cached=feeder.cut.depth if isinstance(feeder, BoundaryFeeder) else 0,
        ema_tested=recipe.ema is not None,
        compile_time_s=compile_s,
        device=str(device),
    )


def feeder_for(
    config: TrialConfig,
    model: TransferModel,
    data: DatasetSplits,
    device: torch.device,
    cache: FeatureCache | None,
    fwd_flops_per_image: float,
    execution: Execution | None = None,
) -> ImageFeeder | FeatureFeeder | BoundaryFeeder:
    """Image batches; cached-feature batches when the whole backbone is frozen; boundary batches when
    a frozen prefix can be cut off (``train/boundary.py``). Cached splits are all fetched now.

    Frozen BatchNorm statistics are re-estimated first when the config asks (``bn_stats``), so the
    tensors cached are those of the recalibrated backbone; the feeder's ``bn_pass`` says what it did."""
    execution = execution or resolve_execution(config, device)
    autocast, precision = execution.autocast, execution.precision
    images = ImageFeeder(
        data,
        device=device,
        mean=model.backbone.data_config["mean"],
        std=model.backbone.data_config["std"],
        batch_size=config.batch_size,
        # Inference holds no activations for backward: larger batches are safe and faster.
        eval_batch_size=max(config.batch_size, min(4 * config.batch_size, 1024)),
        augment=augment_for(config, model.backbone.data_config, device),
        channels_last=execution.channels_last,
    )
    if config.recalibrates_bn:
        images.bn_pass = recalibrate_frozen_bn(model, images.eval_batches("train", PASS_BATCH), device, autocast)
    if boundary_applies(config, model):
        return _boundary_feeder(config, model, data, images, cache, execution)
    if not cache_applies(config, model):
        return images
    model.eval()
    feeder = FeatureFeeder(
        model,
        images,
        config,
        fingerprint=data.fingerprint,
        cache=cache if cache is not None else FeatureCache(None),
        autocast=autocast,
        precision=precision,
        # Counted at the whole-model forward (the neck and head on top are a negligible
        # overestimate) so that attention is counted on every device.
        flops_per_image=fwd_flops_per_image,
    )
    for split in ("train", "val", "test"):
        feeder.features(split)
    return feeder


def _boundary_feeder(
    config: TrialConfig,
    model: TransferModel,
    data: DatasetSplits,
    images: ImageFeeder,
    cache: FeatureCache | None,
    execution: Execution,
) -> ImageFeeder | BoundaryFeeder:
    """The boundary feeder with every split fetched, or the image feeder with the reason logged."""
    cut = plan_cut(model, execution.autocast)
    if isinstance(cut, str):
        log_fallback(config, cut)
        return images
    store = (cache if cache is not None else FeatureCache(None)).boundary
    feeder = BoundaryFeeder(model, images, config, cut, fingerprint=data.fingerprint, store=store,
                            autocast=execution.autocast, precision=execution.precision)
    if feeder.needed_mb() > config.boundary_cache_mb:
        log_fallback(config, f"its activations take {feeder.needed_mb():.0f} MiB, over boundary_cache_mb "
                             f"= {config.boundary_cache_mb}")
        return images
    for split in ("train", "val", "test"):
        feeder.fetch(split)
    return feeder


def _training_flops(
    flops: dict[str, float], feeder: ImageFeeder | FeatureFeeder | BoundaryFeeder, images_seen: int
) -> tuple[float, float]:
    """FLOPs per trained image as actually run, and the trial's total (with a cache: the frozen
    pass over the training split, as recorded with its entry, plus the steps on what it cached)."""
    if not isinstance(feeder, CachedFeeder):
        return flops["flops_train_per_image"], flops["flops_train_per_image"] * images_seen
    per_image = feeder.step_flops(flops)
    return per_image, per_image * images_seen + feeder.costs["train"].flops


def _feature_seconds(feeder: Any) -> float:
    """The cached training split's frozen pass, as its cache entry recorded it (0 without a cache)."""
    return feeder.costs["train"].seconds if isinstance(feeder, CachedFeeder) else 0.0


def _improves(metrics: dict[str, float], history: list[dict[str, float]], best_epoch: int) -> bool:
    """Higher validation accuracy wins; equal accuracy is broken by lower validation loss."""
    if best_epoch == 0:
        return True
    best = history[best_epoch - 1]
    if metrics["val_acc"] != best["val_acc"]:
        return metrics["val_acc"] > best["val_acc"]
    return metrics["val_loss"] < best["val_loss"]


__all__ = ["autocast_for", "cache_applies", "feeder_for", "resolve_device", "train_trial"]
