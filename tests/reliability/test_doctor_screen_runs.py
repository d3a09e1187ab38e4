"""`tl-bench doctor` finds a screening run left RUNNING by a process that died, and `--repair` ends it FAILED;
a screening run whose writer still lives is left alone."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from tl_bench.doctor import diagnose
from tl_bench.spec import load_spec
from tl_bench.tracking import DATASET, HOST, KIND, KIND_SCREEN, PID, REPAIRED, STUDY, Tracker


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_doctor_reports_and_repairs_a_screen_run_left_running(tmp_path: Path, mlflow_db: str) -> None:
    path = tmp_path / "scr.yaml"
    path.write_text(yaml.safe_dump({"name": "scr", "datasets": [{"name": "digits", "img_size": 16}],
                                    "space": {"backbones": ["test_resnet"]}, "budget": {"n_trials": 1}}))
    spec = load_spec(path)
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location)  # as `screen` makes it
    client = MlflowClient(spec.tracking_uri)
    tags = {KIND: KIND_SCREEN, STUDY: spec.name, DATASET: "digits", HOST: socket.gethostname()}
    dead = client.create_run(tracker.experiment_id, run_name="screen-digits", tags={**tags, PID: str(_dead_pid())})
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # a screening still writing
    try:
        alive = client.create_run(tracker.experiment_id, run_name="screen-digits", tags={**tags, PID: str(writer.pid)})
        _check_and_repair(spec, client, dead.info.run_id, alive.info.run_id)
    finally:
        writer.kill()
        writer.wait()


def _check_and_repair(spec, client: MlflowClient, dead: str, alive: str) -> None:  # type: ignore[no-untyped-def]
    report = diagnose(spec)
    found = [f for f in report.findings if f.kind == "screen_run_left_running"]
    assert [f.run_id for f in found] == [dead] and not found[0].repaired
    assert "digits" in found[0].detail and client.get_run(dead).info.status == "RUNNING"  # only read

    repaired = diagnose(spec, repair=True)
    assert [f.repaired for f in repaired.findings if f.kind == "screen_run_left_running"] == [True]
    run = client.get_run(dead)
    assert run.info.status == "FAILED" and run.data.tags[REPAIRED] == "screen_run_left_running"
    assert client.get_run(alive).info.status == "RUNNING"  # its process still runs
    assert not [f for f in diagnose(spec).findings if f.kind == "screen_run_left_running"]
