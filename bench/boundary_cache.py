"""Partly frozen trial with and without the freeze-boundary cache: how much faster is the cached one?

The same trial (digits, a small timm CNN, every stage frozen but the last, 10 epochs) runs without
the cache (``use_cache: false``: the frozen stages run on every step and every validation) and with
an empty cache (the frozen stages run once per split, their output stored memory-mapped; the cold
case, the figure compared with the target). Runs alternate in order and repeat; the ratio is the
median over repeats of the wall clock of ``train_trial`` uncached / cached (model building and data
loading excluded). Accuracies must match: the cached tensor is what the frozen stages compute.
The floor printed beside the ratio is the one the feature cache's benchmark prints: how many frozen
passes over the images the uncached trial makes per pass of the cached one. The last line is one
JSON object.

    python bench/boundary_cache.py [--backbone resnet18] [--repeats 3] [--threads N]
    python bench/boundary_cache.py --smoke    # test_resnet, 256 training images, 2 epochs, one repeat
"""

from __future__ import annotations

import json
import statistics

import torch

from tl_bench.config import TrialConfig, TrialResult
from tl_bench.data import load_dataset
from tl_bench.train import FeatureCache, build_for

from cache import parse_args, timed  # bench/cache.py: the same options and the same timed trial

TARGET = 3.0


def same_accuracies(a: TrialResult, b: TrialResult) -> bool:
    """Every epoch's validation accuracy and the test accuracy agree (to one item of 10,000)."""
    pairs = [(x["val_acc"], y["val_acc"]) for x, y in zip(a.history, b.history)] + [(a.test_acc, b.test_acc)]
    return len(a.history) == len(b.history) and all(abs(x - y) < 1e-4 for x, y in pairs)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])

    probe = build_for(TrialConfig(dataset="digits", backbone=args.backbone, img_size=args.img_size), 10)
    config = TrialConfig(
        dataset="digits",
        backbone=args.backbone,
        img_size=args.img_size,
        freeze_depth=probe.backbone.n_stages - 1,  # all but the last stage
        epochs=args.epochs,
        batch_size=64,
        lr=1e-2,
        seed=0,
    )
    data = load_dataset("digits", img_size=args.img_size, seed=0,
                        interpolation=probe.backbone.data_config["interpolation"],
                        train_size=256 if args.smoke else None)
    timed(config.replace(epochs=1), data, FeatureCache(None))  # warm-up: allocator, kernels
    timed(config.replace(epochs=1, use_cache=False), data, None)

    times: dict[str, list[float]] = {"uncached": [], "cached": []}
    results: dict[str, TrialResult] = {}
    runs = [("uncached", config.replace(use_cache=False)), ("cached", config)]
    for repeat in range(args.repeats):
        for name, cfg in runs if repeat % 2 == 0 else runs[::-1]:  # alternate which goes first
            seconds, results[name] = timed(cfg, data, FeatureCache(None) if cfg.use_cache else None)
            times[name].append(seconds)
            print(f"repeat {repeat}: {name:8s} {seconds:7.2f} s  test_acc {results[name].test_acc:.4f}  "
                  f"boundary_cached {results[name].boundary_cached}", flush=True)

    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = statistics.median(u / c for u, c in zip(times["uncached"], times["cached"]))
    n_train, n_val, n_test = len(data.train), len(data.val), len(data.test)
    # Frozen passes over images: every epoch re-runs train and val without the cache; with it, each
    # split runs once. The trained last stage runs either way, so the ratio stays below this.
    floor = (config.epochs * (n_train + n_val) + n_test) / (n_train + n_val + n_test)
    identical = same_accuracies(results["uncached"], results["cached"])
    # The bound FLOPs set: training FLOPs uncached over cached (the fill included). The trained tail's
    # forward and backward run either way, so no cache can beat this ratio where time follows FLOPs.
    flops_bound = results["uncached"].train_flops_total / results["cached"].train_flops_total
    print(f"ratio {ratio:.2f} (target {TARGET}), training-FLOPs bound {flops_bound:.2f}, frozen-pass ratio "
          f"{floor:.2f}, identical accuracies: {identical}")
    figures = {
        "benchmark": "boundary_cache",
        "ratio": round(ratio, 2),
        "target": TARGET,
        "met": ratio >= TARGET,
        "backbone_pass_ratio": round(floor, 2),
        "flops_bound": round(flops_bound, 2),
        "identical_accuracy": identical,
        "uncached_s": round(median["uncached"], 3),
        "cached_s": round(median["cached"], 3),
        "boundary_cached": results["cached"].boundary_cached,
        "test_acc_uncached": results["uncached"].test_acc,
        "test_acc_cached": results["cached"].test_acc,
        "backbone": config.backbone,
        "freeze_depth": config.freeze_depth,
        "img_size": config.img_size,
        "epochs": config.epochs,
        "split_sizes": [n_train, n_val, n_test],
        "repeats": args.repeats,
        "smoke": args.smoke,
        "device": results["cached"].device,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
