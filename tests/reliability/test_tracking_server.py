"""A tracking server behind a URL with a password, and the server dying in the middle of a study.

One real ``mlflow server`` on 127.0.0.1 (SQLite backend), stopped and started by pid. The password
never appears in anything tl-bench prints; a server that dies is reported within a bounded time as one
line, the trial it cut short is failed in Optuna with the reason, and the next run repairs its run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from fault_support import MlflowServer, cli
from limits_stores_ui_cases import closed_port
from reliability_support import load_trials, running_with_run, spec_data, sqlite_url, trial_runs, wait_for, write_spec

pytestmark = pytest.mark.slow
SECRET = "s3cr3t-Pa55"


def test_passwords_never_shown_and_a_dead_server_is_one_line_then_repaired(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = MlflowServer(tmp_path)
    url = server.start()
    secret_url = url.replace("http://", f"http://tlb:{SECRET}@")
    storage = sqlite_url(tmp_path, "optuna.db")
    # Fine-tuned (no feature cache) and long enough that the server dies in the middle of trial 1 on a fast machine.
    space = {"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"],
             "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}}
    write_spec(tmp_path, spec_data(space=space, fixed={"epochs": 40, "batch_size": 50}, pruner="none",
                                   budget={"n_trials": 1}))
    shown: list[str] = []
    try:
        # A study, its closing hints, the UI and the leaderboard through the URL with the password.
        for args in (["run", "study.yaml", "--tracking-uri", secret_url],
                     ["ui", "--tracking-uri", secret_url],
                     ["leaderboard", "--tracking-uri", secret_url, "--study", "rel"]):
            done = cli(args, capfd)
            assert done.code == 0, done.err[-3000:]
            shown += [done.out, done.err]
        assert "tl-bench ui --tracking-uri 'http://tlb:***@127.0.0.1" in shown[0]  # shell-quoted, password hidden
        assert (f"MLflow UI: http://tlb:***@127.0.0.1:{server.port}/#/experiments?workflowType=machine_learning "
                "(served by the tracking server)") in shown[2]
        # Error lines: a server and a database that do not answer.
        for args in (["run", "study.yaml", "--tracking-uri", f"http://tlb:{SECRET}@127.0.0.1:{closed_port()}"],
                     ["run", "study.yaml", "--storage", f"postgresql://tlb:{SECRET}@127.0.0.1:{closed_port()}/tlb"]):
            done = cli(args, capfd)
            assert done.code == 2 and "tlb:***@127.0.0.1" in done.err, done.err[-2000:]
            shown += [done.out, done.err]

        # The server dies while trial 1 trains; the trial's end cannot be recorded.
        killed: dict[str, float] = {}

        def kill_in_trial_1() -> None:
            wait_for(lambda: running_with_run(storage, 1), timeout=300, what="trial 1 RUNNING with its run")
            server.kill()
            killed["at"] = time.monotonic()

        watcher = threading.Thread(target=kill_in_trial_1, daemon=True)
        watcher.start()
        done = cli(["run", "study.yaml", "--tracking-uri", secret_url, "--n-trials", "3", "--quiet"], capfd)
        watcher.join(timeout=30)
        shown += [done.out, done.err]
        took = time.monotonic() - killed["at"]
        lines = [line for line in done.lines if line.startswith("error: ")]
        assert done.code == 2 and len(lines) == 1 and "Traceback" not in done.err, done.err[-3000:]
        assert "MLflow tracking server 'http://tlb:***@127.0.0.1" in lines[0] and "does not answer" in lines[0]
        assert took < 90, f"{took:.0f} s from the kill to the error"  # the trial's rest and ~15 s of retries
        cut = load_trials(storage)[1]
        assert cut.state == TrialState.FAIL and cut.user_attrs["error"].startswith("not recorded: MLflow tracking server")

        server.start()  # the same port and store
        again = cli(["run", "study.yaml", "--tracking-uri", secret_url, "--n-trials", "3", "--quiet"], capfd)
        shown += [again.out, again.err]
        assert again.code == 0, again.err[-3000:]
        trials = load_trials(storage)
        assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
        runs = {int(r.data.tags["tlb.trial"]): r for r in trial_runs(url)}
        assert runs[1].info.status == "FAILED" and runs[1].data.tags["tlb.state"] == "FAIL"
        assert all(runs[t.number].info.status == "FINISHED" for t in trials if t.state == TrialState.COMPLETE)
        assert cli(["doctor", "study.yaml", "--tracking-uri", url], capfd).code == 0
    finally:
        server.stop()
    assert not [text for text in shown if SECRET in text]
