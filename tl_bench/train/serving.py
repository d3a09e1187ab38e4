"""What a trained model costs where it is served: measured inference latency and throughput.

The model is measured as it would be deployed: in eval mode, with LoRA or IA3 adapters merged
into their layers (as kept models are logged), at the precision and memory format the trial ran
with when it is served on the training device, in fp32 and the default layout on another
(``latency_device``). Latency depends on the architecture, not the weights, so one measurement per
architecture key and process serves every trial of that architecture (``train.latency``).
"""

from __future__ import annotations

from collections.abc import Hashable

import torch

from tl_bench.config import TrialConfig
from tl_bench.models import TransferModel, merged_adapters
from tl_bench.train.execution import Execution, autocast_dtype
from tl_bench.train.latency import Latency, LatencySettings, measure_latency, stored_latency


def architecture_key(config: TrialConfig, num_classes: int) -> Hashable:
    """What the served network's latency depends on besides how it runs: merged adapters add no
    layer, prompt tokens lengthen the sequence."""
    prompts = config.prompt_tokens if config.adaptation == "prompt" else 0
    return (config.backbone, prompts, config.neck, config.head, config.neck_dim, config.head_hidden, num_classes,
            config.img_size)


def latency_settings(config: TrialConfig, execution: Execution) -> LatencySettings:
    """Where and how the model is timed: ``latency_device`` (auto: the training device)."""
    device = execution.device if config.latency_device == "auto" else torch.device(config.latency_device)
    same = device == execution.device
    return LatencySettings(
        img_size=config.img_size,
        device=str(device),
        dtype=autocast_dtype(execution.precision) if same else None,
        channels_last=execution.channels_last if same else False,
        batch_sizes=tuple(config.latency_batch_sizes),
        threads=config.latency_threads,
    )


def serving_latency(config: TrialConfig, model: TransferModel, execution: Execution, num_classes: int) -> Latency:
    """The measured latency of ``model`` as served (memoised per architecture and settings): the
    adapters are merged, on a copy, only for an architecture not measured yet."""
    key, settings = architecture_key(config, num_classes), latency_settings(config, execution)
    return stored_latency(key, settings) or measure_latency(merged_adapters(model), key, settings)


__all__ = ["architecture_key", "latency_settings", "serving_latency"]
