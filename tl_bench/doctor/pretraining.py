"""``tl-bench doctor`` on local pretraining: runs left RUNNING, checkpoints without a run.

A pretraining run is written once its checkpoint is complete
(``tl_bench.pretrain``), so a process killed in between leaves the run
RUNNING, or leaves no run at all, while every later study uses the
checkpoint. What is looked for (``Finding.kind``):

- ``pretrain_run_left_running``: a pretraining run says RUNNING and the process
  that wrote it is gone (same host: its pid; another host, or no pid recorded:
  started longer ago than a store write can take) -> FINISHED when its
  checkpoint exists (results it lacks are taken from the checkpoint's
  metadata), else FAILED.
- ``checkpoint_without_run``: a checkpoint the spec declares exists, and no
  pretraining run names it -> its run is written from the checkpoint's
  metadata, with the file's time as its end.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tl_bench.config import Weights
from tl_bench.doctor.finding import Finding
from tl_bench.faults import LOCK_WAIT_S
from tl_bench.pretrain import checkpoint_metadata, checkpoint_path, pretrain_config
from tl_bench.spec import StudySpec
from tl_bench.study.workers import process_alive
from tl_bench.tracking import (
    CHECKPOINT,
    HOST,
    KIND,
    KIND_PRETRAIN,
    PARENT_RUN_ID,
    PID,
    REPAIRED,
    Run,
    Tracker,
    config_params,
    pretrain_run_name,
    pretrain_tags,
)

# Checkpoint metadata -> the run metric it holds.
_METADATA_METRICS = {"source_val_acc": "val_acc", "source_test_acc": "test_acc", "pretrain_time_s": "pretrain_time_s"}
NO_CHECKPOINT = "pretraining process stopped before its checkpoint was written"


def pretrain_findings(spec: StudySpec, tracker: Tracker, *, repair: bool) -> list[Finding]:
    """Pretraining runs left RUNNING by a dead process, and declared checkpoints with no run."""
    runs = list(tracker.runs(f"tags.`{KIND}` = '{KIND_PRETRAIN}'"))
    found = [_left_running(spec, tracker, run, repair) for run in runs
             if run.info.status == "RUNNING" and not _writer_alive(run)]
    recorded = {run.data.tags.get(CHECKPOINT) for run in runs}
    for backbone in spec.space.backbones:
        for weights in map(Weights.parse, backbone.weights):
            if weights.kind != "local":
                continue
            source = weights.name
            path = checkpoint_path(spec, source, backbone.name)
            if path.is_file() and str(path) not in recorded:
                recorded.add(str(path))
                found.append(_without_run(spec, tracker, source, backbone.name, path, repair))
    return found


def _writer_alive(run: Run) -> bool:
    tags = run.data.tags
    pid = tags.get(PID, "")
    if tags.get(HOST) == socket.gethostname() and pid.isdigit():
        return process_alive(int(pid))
    # Another host (or a run from before pids were recorded): alive while a store write could still be waiting.
    return time.time() * 1000 - (run.info.start_time or 0) < (LOCK_WAIT_S + 60) * 1000


def _metrics_of(path: Path) -> dict[str, float]:
    meta = checkpoint_metadata(path)
    return {metric: float(meta[key]) for key, metric in _METADATA_METRICS.items() if key in meta}


def _left_running(spec: StudySpec, tracker: Tracker, run: Run, repair: bool) -> Finding:
    checkpoint = run.data.tags.get(CHECKPOINT, "")
    done = bool(checkpoint) and Path(checkpoint).is_file()
    found = Finding("pretrain_run_left_running", spec.name, None, run.info.run_id,
                    f"the pretraining run of {Path(checkpoint).name or 'a checkpoint'} is RUNNING; "
                    "the process that wrote it is gone",
                    "end it FINISHED (its checkpoint is complete)" if done else "end it FAILED (no checkpoint)")
    if repair:
        if done:
            missing = {k: v for k, v in _metrics_of(Path(checkpoint)).items() if k not in run.data.metrics}
            if missing:
                tracker.log_summary(run.info.run_id, missing, {})
        tracker.end_run(run.info.run_id, "COMPLETE" if done else "FAIL", error=None if done else NO_CHECKPOINT,
                        tags={REPAIRED: found.kind})
        found.repaired = True
    return found


def _without_run(spec: StudySpec, tracker: Tracker, source: str, backbone: str, path: Path, repair: bool) -> Finding:
    found = Finding("checkpoint_without_run", spec.name, None, None,
                    f"checkpoint {path.name} (local:{source}, {backbone}) has no pretraining run",
                    "write its run from the checkpoint's metadata")
    if repair:
        config = pretrain_config(spec, source, backbone)
        metrics = _metrics_of(path)
        end = int(path.stat().st_mtime * 1000)
        start = end - int(metrics.get("pretrain_time_s", 0.0) * 1000)
        parent = tracker.pretraining_parent(start)
        tags = pretrain_tags(source=source, checkpoint=str(path), source_dataset=config.dataset)
        found.run_id = tracker.record_run(
            run_name=pretrain_run_name(source, backbone), tags=tags | {REPAIRED: found.kind, PARENT_RUN_ID: parent},
            params=config_params(config), metrics=[(k, v, 0) for k, v in metrics.items()], state="COMPLETE",
            start_ms=start, end_ms=end,
        )
        tracker.end_pretraining_parent(parent, end)
        found.repaired = True
    return found


__all__ = ["NO_CHECKPOINT", "pretrain_findings"]
