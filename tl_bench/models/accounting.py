"""What a built model costs: parameter counts per part and measured FLOPs per image.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add
counts 2, so timm's "GMACs" x 2). Training FLOPs per image are measured, not
estimated: one forward plus the backward that autograd actually runs given
the model's ``requires_grad`` flags (weight gradients of trainable layers,
input gradients down to the first trainable layer; nothing below a frozen
prefix). Matmuls, convolutions and attention are counted; elementwise ops
and norms are not, as in timm's published figures.

FLOPs depend on the architecture, the ``requires_grad`` flags and the input, never on
the weights' values, so each such combination is measured once per process: a study's
trials on one backbone pay for one measurement, not one each.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from tl_bench.models.model import TransferModel

_aten = torch.ops.aten


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# PyTorch counts the CUDA attention kernels but not the CPU one; count it too so
# a model reports the same FLOPs on every device
_CUSTOM = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def count_params(model: TransferModel) -> dict[str, float]:
    """Total, trainable and per-part parameter counts, and the trainable fraction."""

    def n(module: nn.Module, trainable: bool = False) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)

    total = n(model)
    trainable = n(model, trainable=True)
    return {
        "params_total": total,
        "params_trainable": trainable,
        "params_backbone": n(model.backbone),
        "params_neck": n(model.neck),
        "params_head": n(model.head),
        "trainable_fraction": trainable / total if total else 0.0,
    }


def adapter_state(model: TransferModel, *, bn_recalibrated: bool = False) -> dict[str, torch.Tensor]:
    """What a task stores beside the shared pretrained backbone, by state-dict name: every trained
    tensor (the adaptation method's parameters, later stages, neck and head) and the BatchNorm
    statistics that training or the recalibration pass moved. A full fine-tune stores the whole
    model; a linear probe its head."""
    frozen = {id(m) for m in model.backbone.frozen_batchnorms()}
    moved = {
        f"{name}.{b}" if name else b
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats and (id(module) not in frozen or bn_recalibrated)
        for b, _ in module.named_buffers(recurse=False)
    }
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    return {name: t for name, t in model.state_dict(keep_vars=True).items() if name in trained | moved}


def adapter_mb(model: TransferModel, *, bn_recalibrated: bool = False) -> float:
    """MiB of ``adapter_state``: what a user stores per task."""
    return sum(t.numel() * t.element_size() for t in adapter_state(model, bn_recalibrated=bn_recalibrated).values()) / 2**20


def _count(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False, custom_mapping=_CUSTOM) as counter:
        fn()
    return counter.get_total_flops()


def _train_step(params: list[nn.Parameter], run: Callable[[], torch.Tensor]) -> None:
    # autograd.grad instead of backward(): same backward graph, but no .grad left on the model
    out = run()
    if params:
        torch.autograd.grad(out.float().sum(), params, allow_unused=True)


_measured: dict[str, dict[str, float]] = {}


def _structure_key(model: TransferModel, size: int, batch_size: int, param: torch.Tensor) -> str:
    """What the counted FLOPs depend on: every module with its shapes (``repr``), the points the
    backbone returns features from, which parameters train, and the input."""
    parts = (
        model.backbone.name,
        model.backbone.feature_indices,
        repr(model.backbone.model),
        repr(model.neck),
        repr(model.head),
        "".join("1" if p.requires_grad else "0" for p in model.parameters()),
        size,
        batch_size,
        str(param.device),
        str(param.dtype),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def measure_flops(model: TransferModel, img_size: int | None = None, batch_size: int = 1) -> dict[str, float]:
    """Measured FLOPs per image: ``flops_fwd_per_image``, ``flops_train_per_image``, ``flops_head_train_per_image``.

    ``flops_train_per_image`` = forward + backward of the whole model with its real
    ``requires_grad`` flags; ``flops_head_train_per_image`` = the same for neck and
    head alone on precomputed features, the cost of a step when a feature cache
    replaces the backbone. The model runs in eval mode (the counted ops are the
    same as in train mode) so BatchNorm statistics are not touched; its mode and
    gradients are left as they were. Measured once per architecture, trainable set and input
    in a process (see the module docstring).
    """
    size = img_size or model.backbone.img_size
    param = next(model.parameters())
    key = _structure_key(model, size, batch_size, param)
    if key not in _measured:
        _measured[key] = _measure(model, size, batch_size, param)
    return dict(_measured[key])


def _measure(model: TransferModel, size: int, batch_size: int, param: torch.Tensor) -> dict[str, float]:
    x = torch.zeros(batch_size, 3, size, size, device=param.device, dtype=param.dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    head_trainable = [p for m in (model.neck, model.head) for p in m.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            feats: list = []
            backbone_fwd = _count(lambda: feats.extend(model.extract_feat(x)))
            head_fwd = _count(lambda: model.forward_from_features(feats))
        with torch.enable_grad():
            train = _count(lambda: _train_step(trainable, lambda: model(x)))
            head_train = _count(lambda: _train_step(head_trainable, lambda: model.forward_from_features(feats)))
    finally:
        model.train(was_training)
    return {
        "flops_fwd_per_image": (backbone_fwd + head_fwd) / batch_size,
        "flops_train_per_image": train / batch_size,
        "flops_head_train_per_image": head_train / batch_size,
    }


__all__ = ["adapter_mb", "adapter_state", "count_params", "measure_flops"]
