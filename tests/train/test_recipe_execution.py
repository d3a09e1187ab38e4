"""Precision, memory format and compilation reach the loop; auto on CPU is exactly the earlier fp32."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from tl_bench.errors import TrainingSetupError
from tl_bench.train import build_for, train_config, train_trial
from tl_bench.train.execution import autocast_for, compile_model, resolve_execution

CPU = torch.device("cpu")


def test_auto_on_cpu_is_fp32_and_unchanged(make_config) -> None:
    assert resolve_execution(make_config(), CPU).precision == "fp32"
    assert not resolve_execution(make_config(), CPU).channels_last
    auto = train_config(make_config(epochs=1))
    fp32 = train_config(make_config(epochs=1, precision="fp32", channels_last=False))
    assert auto.history == fp32.history and auto.test_acc == fp32.test_acc


def test_bf16_autocasts_the_forward_on_cpu(make_config) -> None:
    autocast, name = autocast_for(CPU, "bf16")
    with autocast():
        out = nn.Linear(4, 2)(torch.randn(3, 4))
    assert name == "bf16" and out.dtype == torch.bfloat16
    bf16 = train_config(make_config(epochs=1, precision="bf16"))
    fp32 = train_config(make_config(epochs=1))
    assert bf16.history[0]["train_loss"] != fp32.history[0]["train_loss"]


def test_fp16_without_cuda_is_one_clear_line(make_config) -> None:
    with pytest.raises(TrainingSetupError) as err:
        train_config(make_config(epochs=1, precision="fp16"))
    assert str(err.value) == "precision fp16 needs CUDA, the device is cpu; accepted: auto, fp32, bf16"


def test_channels_last_reaches_the_model(make_config, digits) -> None:
    config = make_config(epochs=1, channels_last=True)
    model = build_for(config, digits.num_classes)
    train_trial(config, model, digits)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()


@pytest.mark.slow
def test_compile_is_timed_apart_and_leaves_weights_and_statistics_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seconds = compile_model(model, torch.randn(8, 3, 8, 8), contextlib.nullcontext, CPU)
    assert seconds > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics included
    assert all(p.grad is None for p in model.parameters())
    x = torch.randn(5, 3, 8, 8)  # another batch size runs on the dynamic-batch graph
    model.eval()
    assert model(x).shape == (5, 2)
