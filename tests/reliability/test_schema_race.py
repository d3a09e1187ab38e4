"""Two ``tl-bench run`` started at once on a fresh folder: one creates the stores' schemas while the other
waits for it (a lock file beside each SQLite store), and both finish."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_support import Processes, load_trials, parent_runs, spec_data, trial_runs, write_spec

HOLD = """
import sys, time
from tl_bench.file_lock import creating
with creating(sys.argv[1], "MLflow store"):
    print("held", time.time(), flush=True)
    time.sleep(float(sys.argv[2]))
print("released", time.time(), flush=True)
"""


@pytest.mark.slow
def test_two_runs_started_together_on_a_fresh_folder_both_finish(tmp_path: Path, processes: Processes) -> None:
    spec = write_spec(tmp_path, spec_data(budget={"n_trials": 2}))
    procs = [processes.start(["run", spec.name, "--quiet"], cwd=tmp_path) for _ in range(2)]
    errors = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        errors.append(err)
        assert proc.returncode == 0, err[-3000:]  # was: exit 1, "duplicate column name: step"
    assert not [e for e in errors if "Traceback" in e], errors
    trials = load_trials(f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}")
    assert len(trials) == 2 and {t.state.name for t in trials} == {"COMPLETE"}
    tracking = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert sorted(int(r.data.tags["tlb.trial"]) for r in trial_runs(tracking)) == [0, 1]
    assert len(parent_runs(tracking)) == 1


def test_a_store_being_created_is_waited_for_and_its_creator_named(tmp_path: Path) -> None:
    """The lock file says who holds it; a second creator waits for the first to let go."""
    store = tmp_path / "runs" / "mlflow.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(store), "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("held ")
        note = json.loads((tmp_path / "runs" / "mlflow.db.lock").read_text())
        assert note["pid"] == holder.pid and note["host"] == socket.gethostname() and note["since"]
        waiter = subprocess.run([sys.executable, "-c", HOLD, str(store), "0"], capture_output=True, text=True,
                                timeout=60, env=os.environ)
        assert waiter.returncode == 0, waiter.stderr
        released = float(holder.stdout.readline().split()[1])
        assert float(waiter.stdout.split()[1]) >= released  # it got the lock only once the holder let go
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "runs" / "mlflow.db.lock").read_text() == ""  # emptied when let go
