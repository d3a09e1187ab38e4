"""Trainer throughput against a bare PyTorch loop on real backbones at 224 px, bf16, channels_last.

For each model (default resnet50 and vit_small_patch16_224, from scratch
weights: throughput does not depend on their values, and nothing is
downloaded), both train the same freshly built model on the same in-memory
uint8 images (digits resized to the input size, held on the GPU) with the
same batch size, AdamW, precision and memory format. The bare loop is
``bench/loop.py``'s ``hand_loop``: shuffle, normalise, forward, backward,
step. Trainer throughput is its own ``train_throughput_ips`` (training epochs
only). Runs alternate which goes first; the ratio is the median over repeats
of trainer/bare for the two runs of one repeat. The last line is one JSON
object with every model's figures; ``ratio`` is the lowest model's.

    python bench/gpu.py                                        # CUDA required
    python bench/gpu.py --model resnet50 --batch-size 256 --repeats 5
    python bench/gpu.py --device cpu --model test_resnet --img-size 32   # the code path on the CPU
    python bench/gpu.py --smoke     # test_resnet at 64 px, 1 epoch, 1 repeat; without CUDA: a skipped line

Without CUDA, ``--smoke`` prints its JSON line with ``ratio`` null and ``skipped`` saying why, and
exits 0; a full run refuses in one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tl_bench.config import TrialConfig

TARGET = 0.95
MODELS = ("resnet50", "vit_small_patch16_224")


def _refuse_without_cuda(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA GPU and this machine has none; accepted: a machine with CUDA, --smoke "
              "(says it was skipped), or the code path on the CPU: --device cpu --model test_resnet --img-size 32",
              file=sys.stderr)
        raise SystemExit(2)


def measure(config: TrialConfig, repeats: int, train_size: int | None) -> dict[str, object]:
    from loop import hand_loop, trainer  # bench/loop.py, next to this script
    from tl_bench.data import load_dataset
    from tl_bench.train import build_for

    interpolation = build_for(config, 10).backbone.data_config["interpolation"]
    data = load_dataset("digits", img_size=config.img_size, train_size=train_size, seed=0, interpolation=interpolation)
    warm = config.replace(epochs=1)
    hand_loop(warm, data), trainer(warm, data)  # cuDNN autotuning, allocator and kernels warmed for both
    runs: dict[str, list[float]] = {"trainer": [], "bare": []}
    for repeat in range(repeats):
        order = (("trainer", trainer), ("bare", hand_loop))
        for name, fn in order if repeat % 2 == 0 else order[::-1]:
            runs[name].append(fn(config, data))
            print(f"{config.backbone} repeat {repeat}: {name:8s} {runs[name][-1]:9.1f} img/s", flush=True)
    ratio = statistics.median(t / b for t, b in zip(runs["trainer"], runs["bare"]))
    return {
        "ratio": round(ratio, 3),
        "met": ratio >= TARGET,
        "trainer_ips": round(statistics.median(runs["trainer"]), 1),
        "bare_ips": round(statistics.median(runs["bare"]), 1),
        "trainer_runs_ips": [round(v, 1) for v in runs["trainer"]],
        "bare_runs_ips": [round(v, 1) for v in runs["bare"]],
        "train_items": len(data.train),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help=f"timm model, repeatable (default: {', '.join(MODELS)})")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: digits' split)")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])  # the bare loop has no loss scaler
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="test_resnet at 64 px, 256 images, 1 epoch, 1 repeat; without CUDA, say it was skipped")
    args = parser.parse_args()
    if args.smoke:
        args.model = args.model or ["test_resnet"]
        args.img_size, args.epochs, args.repeats, args.train_size = 64, 1, 1, args.train_size or 256
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            print(json.dumps({"benchmark": "gpu", "ratio": None, "target": TARGET, "met": None, "smoke": True,
                              "skipped": "no CUDA device on this machine (bench/gpu.py measures CUDA)"}))
            return
    _refuse_without_cuda(args.device)
    # imported here, after the check above: a refusal without CUDA should cost no more than importing torch
    from tl_bench.config import TrialConfig

    results = {}
    for model in args.model or MODELS:
        config = TrialConfig(
            dataset="digits", backbone=model, img_size=args.img_size, freeze_depth=0, epochs=args.epochs,
            batch_size=args.batch_size, lr=1e-4, seed=0, use_cache=False, device=args.device,
            precision=args.precision, channels_last=not args.no_channels_last,
        )
        results[model] = measure(config, args.repeats, args.train_size)
    ratio = min(r["ratio"] for r in results.values())
    print(json.dumps({
        "benchmark": "gpu",
        "ratio": ratio,
        "target": TARGET,
        "met": ratio >= TARGET,
        "models": results,
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "precision": args.precision,
        "channels_last": not args.no_channels_last,
        "smoke": args.smoke,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
