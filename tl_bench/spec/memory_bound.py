"""The largest ``img_size`` a study can train at on this machine: one batch has to fit in its memory.

A training step holds the batch's float32 input and the activations kept for the backward pass:
at least ``ACTIVATION_FACTOR`` times the input (measured: 15x for timm's test_vit, 33x for
test_resnet, 58x for resnet18), so the bound only refuses sizes that cannot train. The memory is
the GPU's when the study trains on one (checked again by ``tl-bench run`` once torch is loaded), else the
machine's (its cgroup limit when lower).
"""

from __future__ import annotations

import math
import sys

from tl_bench.config import TrialConfig
from tl_bench.host_memory import host_memory_bytes
from tl_bench.spec.study import StudySpec

ACTIVATION_FACTOR = 8  # bytes a training step holds per byte of its float32 input batch, at the least
_BYTES_PER_INPUT = 3 * 4  # RGB, float32


def training_memory_bytes(device: str) -> tuple[int, str]:
    """The memory a batch trains in, and its name: the first GPU's unless ``device`` is the CPU. The GPU is
    asked only once torch is loaded (``tl-bench run`` checks again then): reading a study file never loads it."""
    torch = sys.modules.get("torch")
    if torch is not None and device != "cpu" and torch.cuda.is_available():
        index = (torch.device(device).index or 0) if device.startswith("cuda") else 0
        return torch.cuda.get_device_properties(index).total_memory, "the GPU has"
    return host_memory_bytes(), "this machine has"


def batch_bytes(img_size: int, batch_size: int) -> int:
    """The least memory a training step on ``batch_size`` images of ``img_size`` needs."""
    return batch_size * _BYTES_PER_INPUT * img_size * img_size * ACTIVATION_FACTOR


def max_img_size(batch_size: int, memory: int, ceiling: int) -> int:
    """The largest img_size (at most ``ceiling``) whose batch fits in ``memory``."""
    return min(ceiling, math.isqrt(memory // (batch_size * _BYTES_PER_INPUT * ACTIVATION_FACTOR)))


def _largest_batch(spec: StudySpec) -> int:
    if "batch_size" in spec.fixed:
        return int(spec.fixed["batch_size"])
    searched = spec.space.hyper.get("batch_size")
    if searched is None:
        return TrialConfig.batch_size
    choices = getattr(searched, "choices", None)
    return int(max(choices) if choices is not None else searched.high)  # type: ignore[union-attr]


def check_img_sizes(spec: StudySpec) -> None:
    """SpecError naming the field and the accepted maximum for a dataset (target or pretraining source)
    whose img_size makes one batch larger than the memory it trains in."""
    from tl_bench.data.load import MAX_IMG_SIZE

    memory, owner = training_memory_bytes(str(spec.fixed.get("device", TrialConfig.device)))
    entries = [(f"datasets[{i}].img_size", ds.img_size, _largest_batch(spec)) for i, ds in enumerate(spec.datasets)]
    entries += [(f"pretrain.{name}.dataset.img_size", pt.dataset.img_size, pt.batch_size)
                for name, pt in spec.pretrain.items()]
    for field, img_size, batch in entries:
        if img_size > MAX_IMG_SIZE:
            spec.fail(field, f"img_size {img_size} is above the largest size images are resized to",
                      f"at most {max_img_size(batch, memory, MAX_IMG_SIZE)} here (batch_size {batch})")
        if batch_bytes(img_size, batch) > memory:
            need = batch_bytes(img_size, batch) / 2**30
            spec.fail(field, f"img_size {img_size} needs at least {need:.1f} GiB for one batch of {batch} images; "
                      f"{owner} {memory / 2**30:.1f} GiB",
                      f"at most {max_img_size(batch, memory, MAX_IMG_SIZE)} with batch_size {batch}")


__all__ = ["ACTIVATION_FACTOR", "batch_bytes", "check_img_sizes", "max_img_size", "training_memory_bytes"]
