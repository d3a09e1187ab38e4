"""Frozen-backbone trial with and without the feature cache: how much faster is the cached one?

The same trial (digits, a small timm CNN, whole backbone frozen, 10 epochs)
runs without the cache, with an empty cache (it computes every split's
features once: the cold case, the figure compared with the target) and again
with the cache the cold run filled (the warm case: every later trial of a
study on this backbone). Runs are interleaved and repeated; the ratio is the
median over repeats of the wall clock of ``train_trial`` uncached / cached
(model building and data loading excluded, identical for all three).
The last line is one JSON object.

    python bench/cache.py [--backbone resnet18] [--repeats 3] [--threads N]
    python bench/cache.py --smoke    # test_resnet, 256 training images, 2 epochs, one repeat: proves it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tl_bench.config import TrialConfig, TrialResult
from tl_bench.data import DatasetSplits, load_dataset
from tl_bench.train import FeatureCache, build_for, train_trial

TARGET = 8.0


def timed(config: TrialConfig, data: DatasetSplits, cache: FeatureCache | None) -> tuple[float, TrialResult]:
    model = build_for(config, data.num_classes)
    start = time.perf_counter()
    result = train_trial(config, model, data, cache=cache)
    return time.perf_counter() - start, result


def parse_args(description: str) -> argparse.Namespace:
    """The options of a cache benchmark (this one and bench/boundary_cache.py), torch's threads set from them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true",
                        help="test_resnet, 256 training images, 2 epochs, 1 repeat: proves it runs")
    args = parser.parse_args()
    if args.smoke:
        args.backbone, args.epochs, args.repeats = "test_resnet", 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])

    config = TrialConfig(
        dataset="digits",
        backbone=args.backbone,
        img_size=args.img_size,
        freeze_depth="all",
        epochs=args.epochs,
        batch_size=64,
        lr=1e-2,
        seed=0,
    )
    interpolation = build_for(config, 10).backbone.data_config["interpolation"]
    data = load_dataset("digits", img_size=args.img_size, seed=0, interpolation=interpolation,
                        train_size=256 if args.smoke else None)
    timed(config.replace(epochs=1), data, FeatureCache(None))  # warm-up: allocator, kernels
    timed(config.replace(epochs=1, use_cache=False), data, None)

    times: dict[str, list[float]] = {"uncached": [], "cold": [], "warm": []}
    results: dict[str, TrialResult] = {}
    for repeat in range(args.repeats):
        cache = FeatureCache(None)
        for name, cfg, use in (
            ("uncached", config.replace(use_cache=False), None),
            ("cold", config, cache),
            ("warm", config, cache),
        ):
            seconds, results[name] = timed(cfg, data, use)
            times[name].append(seconds)
            print(f"repeat {repeat}: {name:8s} {seconds:7.2f} s  test_acc {results[name].test_acc:.4f}", flush=True)

    median = {name: statistics.median(values) for name, values in times.items()}
    # Each repeat's runs saw similar load on a shared machine: compare within repeats.
    ratio = statistics.median(u / c for u, c in zip(times["uncached"], times["cold"]))
    warm_ratio = statistics.median(u / w for u, w in zip(times["uncached"], times["warm"]))
    n_train, n_val, n_test = len(data.train), len(data.val), len(data.test)
    # Backbone passes over images: every epoch re-runs train and val without the
    # cache; with it, each split runs once. This bounds the cold ratio.
    forward_ratio = (config.epochs * (n_train + n_val) + n_test) / (n_train + n_val + n_test)
    figures = {
        "benchmark": "cache",
        "ratio": round(ratio, 2),
        "target": TARGET,
        "met": ratio >= TARGET,
        "warm_ratio": round(warm_ratio, 2),
        "backbone_pass_ratio": round(forward_ratio, 2),
        "uncached_s": round(median["uncached"], 3),
        "cached_cold_s": round(median["cold"], 3),
        "cached_warm_s": round(median["warm"], 3),
        "uncached_train_s": round(results["uncached"].train_time_s, 3),
        "cached_cold_train_s": round(results["cold"].train_time_s, 3),
        "test_acc_uncached": results["uncached"].test_acc,
        "test_acc_cached": results["cold"].test_acc,
        "backbone": config.backbone,
        "img_size": config.img_size,
        "epochs": config.epochs,
        "split_sizes": [n_train, n_val, n_test],
        "repeats": args.repeats,
        "smoke": args.smoke,
        "device": results["cold"].device,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
