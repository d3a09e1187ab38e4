"""Inference latency: timed in eval mode as served, once per architecture and settings in a process,
leaving the model, torch's threads and the random state as they were."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from tl_bench.models import build_model
from tl_bench.train.latency import (
    MIN_ROUNDS,
    Latency,
    LatencySettings,
    forget_latencies,
    measure_latency,
    time_inference,
)

IMG = 32
SETTINGS = LatencySettings(img_size=IMG, batch_sizes=(1, 8))


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    forget_latencies()
    yield
    forget_latencies()


def _model(name: str = "test_resnet", **kw: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes=10, img_size=IMG, **kw)


class Calls:
    """Counts the forwards a module really runs, with the mode and input it ran them in."""

    def __init__(self, module: nn.Module) -> None:
        self.count, self.training, self.inputs = 0, [], []
        module.register_forward_pre_hook(self._seen)

    def _seen(self, module: nn.Module, args: tuple) -> None:
        self.count += 1
        self.training.append(module.training)
        self.inputs.append(args[0])


def test_one_architecture_is_measured_once_per_key_and_reused() -> None:
    first, second = _model(), _model()
    calls_first, calls_second = Calls(first), Calls(second)
    measured = measure_latency(first, ("test_resnet", "gap", "linear"), SETTINGS)
    assert calls_first.count > 0
    # the same architecture built again (as the next trial builds it) is not run at all
    again = measure_latency(second, ("test_resnet", "gap", "linear"), SETTINGS)
    assert again is measured and calls_second.count == 0
    counted = calls_first.count
    assert measure_latency(first, ("test_resnet", "gap", "linear"), SETTINGS) is measured
    assert calls_first.count == counted


@pytest.mark.parametrize("changed", [
    {"arch_key": ("test_resnet", "gap", "mlp")},
    {"settings": LatencySettings(img_size=IMG, batch_sizes=(1, 4))},
    {"settings": LatencySettings(img_size=IMG, batch_sizes=(1, 8), threads=2)},
    {"settings": LatencySettings(img_size=IMG, batch_sizes=(1, 8), channels_last=True)},
])
def test_a_different_key_or_setting_measures_again(changed: dict) -> None:
    model = _model()
    calls = Calls(model)
    first = measure_latency(model, ("test_resnet", "gap", "linear"), SETTINGS)
    before = calls.count
    key = changed.get("arch_key", ("test_resnet", "gap", "linear"))
    settings = changed.get("settings", SETTINGS)
    other = measure_latency(model, key, settings)
    assert isinstance(other, Latency) and other is not first
    assert other.batch_sizes == settings.batch_sizes
    if not settings.channels_last:  # a contiguous model is served channels_last from a copy
        assert calls.count > before
    assert measure_latency(model, key, settings) is other


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "test_convnext", "test_efficientnet"])
def test_figures_are_positive_and_consistent(name: str) -> None:
    model = _model(name)
    calls = Calls(model)
    lat = time_inference(model, LatencySettings(img_size=IMG, batch_sizes=(32, 1, 32)))
    assert lat.batch_sizes == (1, 32) and lat.device == "cpu"
    assert lat.latency_ms == lat.ms_at(1) > 0
    assert lat.ms_at(32) >= lat.ms_at(1)  # a batch takes at least as long as one image
    assert lat.infer_ips == pytest.approx(32 * 1000.0 / lat.ms_at(32))
    assert all(runs >= MIN_ROUNDS for runs in lat.runs)
    assert sum(lat.runs) < calls.count  # the warm-up ran too, untimed
    assert all(0.0 <= cv < 1.0 for cv in lat.cv)
    assert 0 < lat.seconds < 5.0  # a tiny model costs a fraction of a second; slack for a busy machine
    metrics = lat.metrics()
    assert metrics["latency_ms"] == lat.latency_ms and metrics["latency_b32_ms"] == lat.ms_at(32)
    assert metrics["latency_runs"] == sum(lat.runs) and metrics["latency_cv"] == max(lat.cv)
    with pytest.raises(KeyError, match="not measured"):
        lat.ms_at(8)


def test_without_batch_one_latency_is_per_image_at_the_smallest_batch() -> None:
    lat = time_inference(_model(), LatencySettings(img_size=IMG, batch_sizes=(4, 2)))
    assert lat.batch_sizes == (2, 4)
    assert lat.latency_ms == pytest.approx(lat.ms_at(2) / 2)


def test_it_times_in_eval_mode_and_restores_every_module_mode() -> None:
    model = _model(freeze_depth=1)
    model.train()
    modes = {name: m.training for name, m in model.named_modules()}
    assert any(modes.values()) and not all(modes.values())  # frozen stem in eval, the rest training
    calls = Calls(model)
    time_inference(model, SETTINGS)
    assert calls.training and not any(calls.training)
    assert {name: m.training for name, m in model.named_modules()} == modes
    model.eval()
    time_inference(model, SETTINGS)
    assert not any(m.training for m in model.modules())


def test_threads_are_set_while_timing_and_restored() -> None:
    torch.set_num_threads(1)
    lat = time_inference(_model(), LatencySettings(img_size=IMG, batch_sizes=(1,), threads=2))
    assert lat.threads == 2
    assert torch.get_num_threads() == 1
    lat = time_inference(_model(), LatencySettings(img_size=IMG, batch_sizes=(1,)))
    assert lat.threads == 1


class Breaks(nn.Module):
    """A model whose forward fails: what the measurement changed must still be put back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("broken forward")


def test_a_failing_forward_still_restores_threads_and_mode() -> None:
    torch.set_num_threads(1)
    model = Breaks().train()
    with pytest.raises(RuntimeError, match="broken forward"):
        time_inference(model, LatencySettings(img_size=IMG, threads=2))
    assert torch.get_num_threads() == 1 and model.training and model.conv.training


def test_the_random_state_is_left_alone() -> None:
    model = _model()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    time_inference(model, SETTINGS)
    assert torch.equal(torch.get_rng_state(), state)


def test_channels_last_is_served_from_a_copy_and_the_model_is_untouched() -> None:
    model = _model()
    calls = Calls(model)
    conv = next(p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    lat = time_inference(model, LatencySettings(img_size=IMG, batch_sizes=(1, 8), channels_last=True))
    # both batch sizes timed (their order is left to bench/latency.py: under load a batch of 8 read faster than 1)
    assert lat.batch_sizes == (1, 8) and lat.latency_ms > 0 and lat.ms_at(8) > 0
    assert calls.count == 0  # the copy in channels_last ran, not the caller's contiguous model
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)


def test_a_channels_last_model_is_timed_in_place_on_channels_last_inputs() -> None:
    model = _model().to(memory_format=torch.channels_last)
    calls = Calls(model)
    time_inference(model, LatencySettings(img_size=IMG, batch_sizes=(4,), channels_last=True))
    assert calls.count > 0
    assert all(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() for x in calls.inputs)


def test_autocast_runs_the_layers_in_the_asked_precision() -> None:
    model = _model()
    dtypes: list[torch.dtype] = []
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    first_conv.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    lat = time_inference(model, LatencySettings(img_size=IMG, batch_sizes=(1,), dtype=torch.bfloat16))
    assert lat.latency_ms > 0 and set(dtypes) == {torch.bfloat16}
    assert next(model.parameters()).dtype == torch.float32  # weights as they were


@pytest.mark.parametrize("bad", [
    {"batch_sizes": ()},
    {"batch_sizes": (0, 1)},
    {"threads": 0},
    {"img_size": 0},
])
def test_settings_refuse_impossible_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        LatencySettings(**{"img_size": IMG, **bad})


def test_settings_name_the_device_one_way() -> None:
    assert LatencySettings(img_size=IMG, device=torch.device("cpu")) == LatencySettings(img_size=IMG, device="cpu")
    assert hash(LatencySettings(img_size=IMG, batch_sizes=[32, 1])) == hash(LatencySettings(img_size=IMG))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cpu_deployment_of_a_cuda_model_and_back_leave_the_model_where_it_was() -> None:
    on_gpu = _model().cuda().to(memory_format=torch.channels_last)
    lat = time_inference(on_gpu, LatencySettings(img_size=IMG, device="cpu", batch_sizes=(1, 4), threads=1))
    assert lat.device == "cpu" and lat.latency_ms > 0
    assert next(on_gpu.parameters()).is_cuda
    on_cpu = _model()
    calls = Calls(on_cpu)
    lat = time_inference(on_cpu, LatencySettings(img_size=IMG, device="cuda", dtype=torch.bfloat16,
                                                 channels_last=True, batch_sizes=(1, 32)))
    assert lat.device == "cuda" and lat.ms_at(32) > 0 and calls.count == 0
    assert not next(on_cpu.parameters()).is_cuda
    calls = Calls(on_gpu)
    time_inference(on_gpu, LatencySettings(img_size=IMG, device="cuda", channels_last=True, batch_sizes=(1,)))
    assert calls.count > 0  # already where and how it is served: timed in place
