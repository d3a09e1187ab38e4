"""Trainer throughput against a minimal hand-written PyTorch loop on the same work.

Both train the same freshly built model (same seed) on the same in-memory
digits split with the same batch size, optimizer, precision and device; the
hand loop does nothing but shuffle, normalise, forward, backward and step.
Trainer throughput is its own ``train_throughput_ips`` (training epochs only,
validation excluded, as for the hand loop). Runs alternate, and the ratio
is the median over repeats of trainer/hand for the two runs of one repeat,
which saw the same load on a shared machine. The last line is one JSON object.

    python bench/loop.py [--backbone test_resnet] [--repeats 7] [--threads N]
    python bench/loop.py --smoke    # 256 training images, 1 epoch, 1 repeat: proves it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from tl_bench.config import TrialConfig
from tl_bench.data import DatasetSplits, load_dataset
from tl_bench.train import build_for, resolve_device, train_trial
from tl_bench.train.execution import resolve_execution

TARGET = 0.95


def hand_loop(config: TrialConfig, data: DatasetSplits) -> float:
    """Images per second of the plainest loop that does the same training."""
    device = resolve_device(config.device)
    model = build_for(config, data.num_classes).to(device)
    # the config's precision and memory format (auto: bf16 and channels_last on CUDA, fp32 on CPU)
    execution = resolve_execution(config, device)
    cuda, channels_last = device.type == "cuda", execution.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp = execution.autocast()
    cfg = model.backbone.data_config
    mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    seen = 0
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(config.epochs):
        for idx in torch.randperm(len(labels), generator=generator).split(config.batch_size):
            idx = idx.to(device)
            x = (images[idx].float() / 255 - mean) / std
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with amp:
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(idx)
    if cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def trainer(config: TrialConfig, data: DatasetSplits) -> float:
    result = train_trial(config, build_for(config, data.num_classes), data)
    return result.train_throughput_ips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="test_resnet")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--smoke", action="store_true",
                        help="256 training images, 1 epoch, 1 repeat: proves it runs")
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.repeats = 1, 1
    if args.threads:
        torch.set_num_threads(args.threads)

    config = TrialConfig(
        dataset="digits",
        backbone=args.backbone,
        img_size=args.img_size,
        freeze_depth=0,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        seed=0,
        use_cache=False,
    )
    interpolation = build_for(config, 10).backbone.data_config["interpolation"]
    data = load_dataset("digits", img_size=args.img_size, seed=0, interpolation=interpolation,
                        train_size=256 if args.smoke else None)
    warm = config.replace(epochs=1)
    hand_loop(warm, data), trainer(warm, data)

    runs: dict[str, list[float]] = {"trainer": [], "hand": []}
    for repeat in range(args.repeats):
        # Alternate which goes first so drift on a shared machine hits both.
        order = (("trainer", trainer), ("hand", hand_loop)) if repeat % 2 == 0 else (("hand", hand_loop), ("trainer", trainer))
        for name, fn in order:
            runs[name].append(fn(config, data))
            print(f"repeat {repeat}: {name:8s} {runs[name][-1]:8.1f} img/s", flush=True)

    median = {name: statistics.median(values) for name, values in runs.items()}
    ratio = statistics.median(t / h for t, h in zip(runs["trainer"], runs["hand"]))
    print(
        json.dumps(
            {
                "benchmark": "loop",
                "ratio": round(ratio, 3),
                "target": TARGET,
                "met": ratio >= TARGET,
                "trainer_ips": round(median["trainer"], 1),
                "hand_loop_ips": round(median["hand"], 1),
                "trainer_runs_ips": [round(v, 1) for v in runs["trainer"]],
                "hand_runs_ips": [round(v, 1) for v in runs["hand"]],
                "backbone": config.backbone,
                "img_size": config.img_size,
                "batch_size": config.batch_size,
                "epochs": config.epochs,
                "train_items": len(data.train),
                "smoke": args.smoke,
                "device": str(resolve_device(config.device)),
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
