"""Local pretraining: a backbone trained on a source dataset becomes a weights choice.

A study spec declares named pretraining settings (``pretrain: {shapes: ...}``);
``local:shapes`` in a backbone's weights list then means "this backbone,
pretrained on that source". The checkpoint is keyed by a hash of every
setting that determines it, so it is trained once and reused by every trial,
worker and later run; a file lock keeps two processes from training it twice,
and the file appears under its final name only once it is complete. A process
that finds the lock held says by whom (host, pid, since when: the holder writes
them into the lock file) and waits at most ``pretrain_wait_s()``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import tl_bench
from tl_bench.config import TrialConfig
from tl_bench.errors import SpecError, TLBenchError, WeightsError
from tl_bench.file_lock import locked

if TYPE_CHECKING:  # annotations only: finding a checkpoint's path needs neither package (nor MLflow) loaded
    from tl_bench.spec import StudySpec
    from tl_bench.tracking import Tracker


WAIT_ENV = "TL_BENCH_PRETRAIN_WAIT_S"
PRETRAIN_WAIT_S = 600.0  # how long a process waits for another's pretraining of the same checkpoint, by default


def pretrain_wait_s() -> float:
    """Seconds to wait for a pretraining another process holds: ``$TL_BENCH_PRETRAIN_WAIT_S`` or ``PRETRAIN_WAIT_S``."""
    given = os.environ.get(WAIT_ENV, "").strip()
    if not given:
        return PRETRAIN_WAIT_S
    try:
        value = float(given)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise TLBenchError(f"{WAIT_ENV}={given!r} is not a number of seconds", "a positive number, e.g. 1800")
    return value


def pretrain_config(spec: StudySpec, name: str, backbone: str) -> TrialConfig:
    """The trial config that trains ``backbone`` from scratch on the source dataset ``name``."""
    if name not in spec.pretrain:
        raise SpecError(f"local:{name} is not declared under pretrain",
                        ", ".join(sorted("local:" + k for k in spec.pretrain)) or "declare it under pretrain:",
                        source=str(spec.source_path), field="weights")
    pt = spec.pretrain[name]
    return TrialConfig(
        **asdict(pt.dataset.data_settings),
        backbone=backbone,
        weights="scratch",
        freeze_depth=0,
        neck="gap",
        head="linear",
        lr=pt.lr,
        backbone_lr_scale=1.0,  # the whole network learns from scratch at one rate
        weight_decay=pt.weight_decay,
        epochs=pt.epochs,
        warmup_epochs=getattr(pt, "warmup_epochs", 0.0),
        batch_size=pt.batch_size,
        augment=getattr(pt, "augment", False),
        seed=pt.seed,
        select="last",  # the checkpoint is the last epoch's weights, so test what is saved
        use_cache=False,
    )


def checkpoint_path(spec: StudySpec, name: str, backbone: str) -> Path:
    """Where the checkpoint of (source ``name``, ``backbone``) lives: named by a hash of its settings."""
    config = pretrain_config(spec, name, backbone)
    return Path(spec.checkpoints_dir) / f"{name}-{backbone}-{config.digest()[:12]}.safetensors"


def checkpoint_metadata(path: str | Path) -> dict[str, str]:
    """The metadata stored in a pretraining checkpoint (source, epochs, accuracy, timing, config)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (OSError, SafetensorError) as err:  # missing, truncated or not safetensors
        raise WeightsError(f"checkpoint {str(path)!r} cannot be read ({type(err).__name__})",
                           "a .safetensors file") from None


def ensure_pretrained(
    spec: StudySpec, name: str, backbone: str, *, tracker: Tracker | None = None, quiet: bool = False
) -> Path:
    """Path of the checkpoint for (source ``name``, ``backbone``), training it first if it does not exist.

    Concurrent callers (threads, worker processes, hosts sharing the folder)
    train it once: the first holds a lock while the others wait, then find it.
    """
    path = checkpoint_path(spec, name, backbone)
    if path.exists():
        return path
    wait_s = pretrain_wait_s()
    what = f"the pretraining of {backbone} for weights local:{name}"

    def say_waiting(holder: str) -> None:
        sys.stderr.write(f"waiting up to {wait_s:g} s for {what}: held by {holder} (lock file "
                         f"{path.with_suffix('.lock')})\n")

    with locked(path.with_suffix(".lock"), wait_s=wait_s, what=what, on_wait=say_waiting,
                todo=f"wait for it to end or stop that process, then run the same command again ({WAIT_ENV} sets "
                     "how many seconds to wait)"):
        if not path.exists():  # checked again: the lock's previous holder may have written it
            _train_and_save(spec, name, backbone, path, tracker=tracker, quiet=quiet)
    return path


def _train_and_save(
    spec: StudySpec, name: str, backbone: str, path: Path, *, tracker: Tracker | None, quiet: bool
) -> None:
    from rich.console import Console

    from tl_bench.data import load_dataset_for
    from tl_bench.models import save_backbone_checkpoint
    from tl_bench.pretrain_progress import pretrain_progress
    from tl_bench.train import build_for, train_trial

    config = pretrain_config(spec, name, backbone)
    console = Console(stderr=True, quiet=quiet, soft_wrap=True)  # paths stay on one line
    console.print(f"pretraining {backbone} on {config.dataset} ({config.epochs} epochs) for weights local:{name} ...")
    start_ms = int(time.time() * 1000)
    start = time.perf_counter()
    data = load_dataset_for(config)
    model = build_for(config, data.num_classes)  # seeded with config.seed: the same settings give the same checkpoint
    with pretrain_progress(console, f"local:{name} {backbone}", config.epochs) as on_epoch:
        try:
            result = train_trial(config, model, data, on_epoch=on_epoch)
        except TLBenchError as err:  # say which checkpoint failed, not only how
            raise TLBenchError(f"pretraining {backbone} for weights local:{name} failed: {err}") from None
    elapsed = time.perf_counter() - start
    metadata = {
        "tl_bench_version": tl_bench.__version__,
        "timm_name": backbone,
        "source_name": name,
        "source_dataset": config.dataset,
        "source_fingerprint": data.fingerprint,
        "source_num_classes": str(data.num_classes),
        "source_train_size": str(len(data.train)),
        "epochs": str(config.epochs),
        "source_val_acc": f"{result.val_acc:.6f}",
        "source_test_acc": f"{result.test_acc:.6f}",
        "pretrain_time_s": f"{elapsed:.3f}",
        "config": json.dumps(config.to_dict(), sort_keys=True, default=str),
    }
    # Written aside and renamed: a reader never sees a partial file under the final name.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        save_backbone_checkpoint(model, tmp, metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    console.print(
        f"  source accuracy {result.test_acc:.3f} (test, {data.num_classes} classes) "
        f"in {elapsed:.1f}s -> {path}"
    )
    if tracker is not None:
        tracker.record_pretrain(config, result, source=name, checkpoint=str(path),
                                pretrain_time_s=float(metadata["pretrain_time_s"]), start_ms=start_ms,
                                end_ms=start_ms + int(elapsed * 1000))


__all__ = ["PRETRAIN_WAIT_S", "WAIT_ENV", "checkpoint_metadata", "checkpoint_path", "ensure_pretrained",
           "pretrain_config", "pretrain_wait_s"]
