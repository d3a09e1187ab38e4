"""Local pretraining killed once its checkpoint is saved: ``tl-bench doctor`` finds what it left, and repairs it.

The checkpoint is complete (every later study uses it), but its MLflow run was never written, or was
left RUNNING. Both are made by real processes killed with SIGKILL: ``tl-bench pretrain`` itself, stopped
while its run waits for a lock another process holds, and a process that started a pretraining run
the way the Tracker does and died before its results.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fault_support import cli, hold_lock
from reliability_support import Processes, all_runs, wait_for, write_spec
from tl_bench.pretrain import checkpoint_metadata, checkpoint_path
from tl_bench.spec import load_spec
from tl_bench.tracking import Tracker

pytestmark = pytest.mark.slow

DYING_PRETRAIN = """
import os, signal, socket, sys
from mlflow.tracking import MlflowClient
from tl_bench.tracking import HOST, PID, pretrain_run_name, pretrain_tags
tracking_uri, experiment, checkpoint = sys.argv[1:4]
client = MlflowClient(tracking_uri)
tags = pretrain_tags(source="shapes", checkpoint=checkpoint, source_dataset="shapes")
tags |= {HOST: socket.gethostname(), PID: str(os.getpid())}
client.create_run(client.get_experiment_by_name(experiment).experiment_id,
                  run_name=pretrain_run_name("shapes", "test_resnet"), tags=tags)
os.kill(os.getpid(), signal.SIGKILL)  # before its params, results and status
"""

SPEC: dict[str, Any] = {
    "name": "pk",
    "datasets": [{"name": "digits", "img_size": 16, "train_size": 100, "val_size": 50}],
    "space": {"backbones": [{"name": "test_resnet", "weights": ["local:shapes"]}]},
    "budget": {"n_trials": 1},
    "pretrain": {"shapes": {"dataset": {"name": "shapes", "img_size": 16, "val_size": 24,
                                        "options": {"num_classes": 3, "n_per_class": 30}},
                            "epochs": 1, "batch_size": 32}},
}


def _doctor(capfd: pytest.CaptureFixture[str], *flags: str) -> tuple[int, list[dict[str, Any]]]:
    done = cli(["doctor", "study.yaml", "--json", *flags], capfd)
    assert done.code in (0, 1), done.err[-2000:]
    return done.code, json.loads(done.out)["findings"]


def _pretrain_runs(tracking_uri: str) -> list[Any]:
    return [r for r in all_runs(tracking_uri, "pk") if r.data.tags.get("tlb.kind") == "pretrain"]


def test_pretraining_killed_after_its_checkpoint_is_found_and_repaired(
    tmp_path: Path, mlflow_db: str, processes: Processes, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # `tl-bench doctor` runs in this process, `tl-bench pretrain` in its own
    spec = load_spec(write_spec(tmp_path, SPEC))
    checkpoint = checkpoint_path(spec, "shapes", "test_resnet")
    Tracker(mlflow_db, "pk")  # the experiment exists, so the pretraining process only reads until it records

    # tl-bench pretrain: trains, saves the checkpoint, then waits to write its run -- and is killed there.
    lock = hold_lock(tmp_path / "runs" / "mlflow.db", 600, readers=True)
    try:
        proc = processes.start(["pretrain", "study.yaml"], cwd=tmp_path)
        wait_for(checkpoint.exists, timeout=300, what="the checkpoint", proc=proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        lock.kill()
        lock.wait()
    assert _pretrain_runs(mlflow_db) == []
    code, findings = _doctor(capfd)
    assert code == 1 and [f["kind"] for f in findings] == ["checkpoint_without_run"]
    code, findings = _doctor(capfd, "--repair")
    assert code == 0 and all(f["repaired"] for f in findings)
    (made,) = _pretrain_runs(mlflow_db)
    meta = checkpoint_metadata(checkpoint)
    assert made.info.status == "FINISHED" and made.data.tags["tlb.checkpoint"] == str(checkpoint)
    assert made.data.tags["tlb.repair"] == "checkpoint_without_run"
    assert made.data.metrics["test_acc"] == pytest.approx(float(meta["source_test_acc"]))
    assert made.data.params["backbone"] == "test_resnet" and made.data.params["dataset"] == "shapes"

    # A process that started the run of that checkpoint and died before its results.
    dying = subprocess.run([sys.executable, "-c", DYING_PRETRAIN, mlflow_db, "pk", str(checkpoint)],
                           capture_output=True, text=True, timeout=300)
    assert dying.returncode == -signal.SIGKILL, dying.stderr[-2000:]
    left = next(r for r in _pretrain_runs(mlflow_db) if r.info.status == "RUNNING")
    code, findings = _doctor(capfd)
    assert code == 1 and [(f["kind"], f["run_id"]) for f in findings] == [("pretrain_run_left_running", left.info.run_id)]
    code, findings = _doctor(capfd, "--repair")
    assert code == 0
    ended = next(r for r in _pretrain_runs(mlflow_db) if r.info.run_id == left.info.run_id)
    assert ended.info.status == "FINISHED" and ended.data.tags["tlb.repair"] == "pretrain_run_left_running"
    assert ended.data.metrics["val_acc"] == pytest.approx(float(meta["source_val_acc"]))
    assert _doctor(capfd) == (0, [])
