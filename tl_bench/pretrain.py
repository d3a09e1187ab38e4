"""Local pretraining: a backbone trained on a source dataset becomes a weights choice.

A study spec declares named pretraining settings (``pretrain: {shapes: ...}``);
``local:shapes`` in a backbone's weights list then means "this backbone,
pretrained on that source". The checkpoint is keyed by a hash of every
setting that determines it, so it is trained once and reused by every trial,
worker and later run; a file lock keeps two processes from training it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import tl_bench
from tl_bench.config import TrialConfig
from tl_bench.errors import SpecError

KIND_TAG = "pretrain"


def pretrain_config(spec: Any, name: str, backbone: str) -> TrialConfig:
    """The trial config that trains ``backbone`` from scratch on the source dataset ``name``."""
    if name not in spec.pretrain:
        raise SpecError(
            f"{spec.source_path}: weights: local:{name} is not declared under pretrain; "
            f"accepted: {sorted('local:' + k for k in spec.pretrain) or 'declare it under pretrain:'}"
        )
    pt = spec.pretrain[name]
    ds = pt.dataset
    return TrialConfig(
        dataset=ds.name,
        backbone=backbone,
        weights="scratch",
        freeze_depth=0,
        neck="gap",
        head="linear",
        img_size=ds.img_size,
        train_size=ds.train_size,
        val_size=ds.val_size,
        split_seed=ds.split_seed,
        data_root=ds.root,
        download=ds.download,
        dataset_options=dict(ds.options or {}),
        lr=pt.lr,
        backbone_lr_scale=1.0,
        weight_decay=getattr(pt, "weight_decay", 0.05),
        epochs=pt.epochs,
        warmup_epochs=getattr(pt, "warmup_epochs", 0.0),
        batch_size=pt.batch_size,
        augment=getattr(pt, "augment", False),
        seed=pt.seed,
        select="last",
        use_cache=False,
    )


def checkpoint_path(spec: Any, name: str, backbone: str) -> Path:
    config = pretrain_config(spec, name, backbone)
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(spec.checkpoints_dir) / f"{name}-{backbone}-{digest}.safetensors"


def ensure_pretrained(spec: Any, name: str, backbone: str, *, tracker: Any = None, quiet: bool = False) -> Path:
    """Path of the checkpoint for (source ``name``, ``backbone``), training it first if it does not exist."""
    path = checkpoint_path(spec, name, backbone)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be training the same checkpoint
        if not path.exists():
            _train_and_save(spec, name, backbone, path, tracker=tracker, quiet=quiet)
    return path


def _train_and_save(spec: Any, name: str, backbone: str, path: Path, *, tracker: Any, quiet: bool) -> None:
    import torch
    from rich.console import Console

    from tl_bench.data import load_dataset
    from tl_bench.models import build_model, save_backbone_checkpoint
    from tl_bench.train import train_trial

    config = pretrain_config(spec, name, backbone)
    console = Console(stderr=True, quiet=quiet)
    console.print(f"pretraining {backbone} on {config.dataset} ({config.epochs} epochs) for weights local:{name} ...")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    data = load_dataset(
        config.dataset,
        img_size=config.img_size,
        train_size=config.train_size,
        val_size=config.val_size,
        seed=config.split_seed,
        root=config.data_root,
        download=config.download,
        **config.dataset_options,
    )
    model = build_model(backbone, num_classes=data.num_classes, img_size=config.img_size, neck="gap", head="linear")
    result = train_trial(config, model, data)
    metadata = {
        "tl_bench_version": tl_bench.__version__,
        "timm_name": backbone,
        "source_name": name,
        "source_dataset": config.dataset,
        "source_fingerprint": data.fingerprint,
        "epochs": str(config.epochs),
        "source_val_acc": f"{result.val_acc:.6f}",
        "source_test_acc": f"{result.test_acc:.6f}",
        "config": json.dumps(config.to_dict(), sort_keys=True, default=str),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.safetensors")
    save_backbone_checkpoint(model, tmp, metadata)
    os.replace(tmp, path)
    console.print(
        f"  source accuracy {result.test_acc:.3f} (test) in {time.perf_counter() - start:.1f}s -> {path}"
    )
    if tracker is not None and getattr(tracker, "enabled", False):
        _track(tracker, config, name, path, result)


def _track(tracker: Any, config: TrialConfig, name: str, path: Path, result: Any) -> None:
    """A run of its own kind (``tlb.kind=pretrain``), so leaderboards of trials never include it."""
    from mlflow.entities import Metric, Param

    from tl_bench.tracking import KIND, VERSION, config_params

    client = tracker.client
    run = client.create_run(
        tracker.experiment_id,
        run_name=f"pretrain-{name}-{config.backbone}",
        tags={KIND: KIND_TAG, VERSION: tl_bench.__version__, "tlb.checkpoint": str(path), "tlb.source": name},
    )
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in result.metrics().items()]
    client.log_batch(run.info.run_id, metrics=metrics[:1000], params=[Param(k, v[:6000]) for k, v in config_params(config).items()])
    client.set_terminated(run.info.run_id, status="FINISHED")


__all__ = ["ensure_pretrained", "checkpoint_path", "pretrain_config"]
