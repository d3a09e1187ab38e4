"""Inference latency: how repeatable is one measurement, and what does it add to a probe trial?

Each repeat builds the same model (digits, a small timm model at 32 px, the trial's precision and
memory format on its device), trains it with ``train_trial`` (a probe trial) and measures its
latency with ``measure_latency`` from an empty memo (the cost the first trial of an architecture
pays; later trials on it find the stored figures). Training and measuring alternate which goes
first. Repeatability is the coefficient of variation over the repeats' measurements of the same
model (batch 1 and the largest batch); the ratio is the median over repeats of the measurement's
seconds over the trial's, against the target of at most 5% (``trials_to_target``: how many trials of
one architecture a study runs before its one measurement is within 5% of their time). Then the
quickstart study (``studies/quickstart.yaml``, pretraining included) runs in this process in a
temporary folder, as ``tl-bench run`` runs it, with every trial measuring its latency: the printed
``ratio`` is the seconds spent measuring over the study's wall time (target at most 5%). The last
line is one JSON object.

    python bench/latency.py [--backbone test_resnet] [--repeats 5] [--epochs 2] [--threads N]
    python bench/latency.py --latency-device cpu --latency-threads 1   # a CPU deployment's figures
    python bench/latency.py --smoke    # 128 training images, 1 epoch, 2 repeats: proves it runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch

from tl_bench.config import TrialConfig
from tl_bench.data import load_dataset
from tl_bench.train import build_for, resolve_device, train_trial
from tl_bench.train.execution import resolve_execution
from tl_bench.train.latency import (
    TARGET_CV,
    Latency,
    LatencySettings,
    forget_latencies,
    measure_latency,
    seconds_measuring,
)

TARGET = 0.05  # the first measurement of an architecture adds at most 5% to its probe trial
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def settings_for(config: TrialConfig, args: argparse.Namespace) -> LatencySettings:
    """As the trial would be served: its device, precision and memory format, unless told otherwise."""
    device = resolve_device(config.device)
    execution = resolve_execution(config, device)
    serve = torch.device(args.latency_device) if args.latency_device else device
    return LatencySettings(
        img_size=config.img_size,
        device=str(serve),
        dtype=_AUTOCAST.get(execution.precision) if serve.type == device.type else None,
        channels_last=execution.channels_last if serve.type == device.type else False,
        batch_sizes=tuple(args.batch_sizes),
        threads=args.latency_threads,
    )


def cv(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if len(values) > 1 and mean > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="test_resnet")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--device", default="auto", help="the trial's device")
    parser.add_argument("--latency-device", default=None, help="measure on this device (default: the trial's)")
    parser.add_argument("--latency-threads", type=int, default=None, help="torch threads while measuring")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true", help="128 training images, 1 epoch, 2 repeats: proves it runs")
    args = parser.parse_args()
    if args.smoke:
        args.train_size, args.epochs, args.repeats = 128, 1, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    config = TrialConfig(dataset="digits", backbone=args.backbone, img_size=args.img_size, train_size=args.train_size,
                         val_size=200, epochs=args.epochs, batch_size=64, lr=3e-3, device=args.device, seed=0)
    data = load_dataset("digits", img_size=args.img_size, seed=0, interpolation="bilinear",
                        train_size=args.train_size, val_size=200)
    settings = settings_for(config, args)
    key = (config.backbone, config.neck, config.head, config.neck_dim, config.head_hidden, data.num_classes)
    train_trial(config.replace(epochs=1), build_for(config, data.num_classes), data)  # warm-up: allocator, kernels

    trial_s: list[float] = []
    latency_s: list[float] = []
    memo_s: list[float] = []
    measured: list[Latency] = []
    for repeat in range(args.repeats):
        model = build_for(config, data.num_classes)
        steps = ("train", "measure") if repeat % 2 == 0 else ("measure", "train")
        for step in steps:
            start = time.perf_counter()
            if step == "train":
                train_trial(config, model, data)
                trial_s.append(time.perf_counter() - start)
                continue
            forget_latencies()
            lat = measure_latency(model, key, settings)
            latency_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert measure_latency(model, key, settings) is lat  # the next trial's call: stored figures
            memo_s.append(time.perf_counter() - start)
            measured.append(lat)
        print(f"repeat {repeat}: trial {trial_s[-1]:6.2f} s  latency {latency_s[-1]:5.3f} s  "
              f"{measured[-1].latency_ms:.3f} ms/image  batch {measured[-1].batch_sizes[-1]} "
              f"{measured[-1].batch_ms[-1]:.3f} ms  cv {max(measured[-1].cv):.3f}", flush=True)

    # Each repeat's two steps saw similar load on a shared machine: compare within repeats.
    ratio = statistics.median(lat / trial for lat, trial in zip(latency_s, trial_s))
    largest = settings.batch_sizes[-1]
    per_image = [m.latency_ms for m in measured]
    per_batch = [m.batch_ms[-1] for m in measured]
    figures = {
        "benchmark": "latency",
        "ratio": round(ratio, 4),
        "target": TARGET,
        "met": ratio <= TARGET,
        "latency_s": round(statistics.median(latency_s), 4),
        "trial_s": round(statistics.median(trial_s), 3),
        # trials of one architecture a study runs before the one measurement is within the target share
        "trials_to_target": math.ceil(ratio / TARGET),
        "memo_hit_ms": round(statistics.median(memo_s) * 1000, 4),
        "repeat_cv_latency_ms": round(cv(per_image), 4),
        f"repeat_cv_b{largest}_ms": round(cv(per_batch), 4),
        "repeatable": max(cv(per_image), cv(per_batch)) <= TARGET_CV,
        "measurements_within_cv": sum(m.stable for m in measured),
        "latency_ms": round(statistics.median(per_image), 4),
        f"b{largest}_ms": round(statistics.median(per_batch), 4),
        "infer_ips": round(statistics.median(m.infer_ips for m in measured), 1),
        "timed_runs": statistics.median(sum(m.runs) for m in measured),
        "backbone": config.backbone,
        "img_size": config.img_size,
        "epochs": config.epochs,
        "train_size": len(data.train),
        "batch_sizes": list(settings.batch_sizes),
        "repeats": args.repeats,
        "smoke": args.smoke,
        "device": settings.device,
        "precision": str(settings.dtype).replace("torch.", "") if settings.dtype else "fp32",
        "channels_last": settings.channels_last,
        "torch_threads": measured[-1].threads,
    }
    figures["first_trial_ratio"] = figures["ratio"]  # one fresh measurement over one probe trial
    figures.update(study_share(args))
    figures["ratio"] = figures["study_share"]  # the target: what measuring adds to a study's wall time
    figures["met"] = figures["ratio"] <= TARGET
    print(json.dumps(figures))


def study_share(args: argparse.Namespace) -> dict[str, float]:
    """Seconds spent measuring latency over the wall time of the quickstart study, run in this process."""
    import shutil
    import tempfile
    from pathlib import Path

    import yaml

    from tl_bench.spec import load_spec
    from tl_bench.study import RunOptions, run_spec

    source = Path(__file__).resolve().parent.parent / "studies" / "quickstart.yaml"
    data = yaml.safe_load(source.read_text())
    if args.smoke:
        data["budget"]["n_trials"] = 2
        data["datasets"][0].update(train_size=128, val_size=64)
        for section in data.get("pretrain", {}).values():
            section["epochs"] = 1
            section["dataset"].setdefault("options", {})["n_per_class"] = 40
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quickstart.yaml"
        path.write_text(yaml.safe_dump(data))
        forget_latencies()
        start = time.perf_counter()
        run_spec(load_spec(path), RunOptions(), quiet=True)
        wall = time.perf_counter() - start
        measuring = seconds_measuring()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"quickstart study: {wall:.1f} s wall, {measuring:.2f} s measuring latency "
          f"({measuring / wall:.2%})", flush=True)
    return {"study_wall_s": round(wall, 2), "study_latency_s": round(measuring, 3),
            "study_share": round(measuring / wall, 4)}


if __name__ == "__main__":
    main()
