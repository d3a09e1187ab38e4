"""MLflow's SQLite store waits LOCK_WAIT_S for another process's lock once the CLI asks for it, and only
then: importing tl-bench changes nothing process-wide, and commands without a store never load MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tl_bench.faults import LOCK_WAIT_S

# MLflow's own session (the one every store call opens) reports the busy timeout it runs with.
SESSION_WAIT = """
import json, sys
from sqlalchemy import text
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
import tl_bench.tracking
from tl_bench.tracking.lock_wait import wait_for_locks, waiting_for_locks

def session_wait():
    store = SqlAlchemyStore(sys.argv[1], sys.argv[2])
    with store.ManagedSessionMaker() as session:
        wait = session.execute(text("PRAGMA busy_timeout")).scalar()
    store.engine.dispose()
    return wait

before = (waiting_for_locks(), session_wait())
wait_for_locks()
wait_for_locks()  # a second call changes nothing
print(json.dumps({"before": before, "after": (waiting_for_locks(), session_wait())}))
"""

# The CLI entry: a command with no store leaves MLflow unloaded; one that names a store installs the wait.
CLI = """
import json, sys
from tl_bench.cli import main

def run(*args):
    try:
        main(list(args))
    except SystemExit as stop:
        return stop.code

seen = {"list": run("list", "heads"), "mlflow_after_list": "mlflow" in sys.modules}
seen["doctor"] = run("doctor", sys.argv[1])
from tl_bench.tracking.lock_wait import waiting_for_locks
seen["waiting_after_doctor"] = waiting_for_locks()
print(json.dumps(seen))
"""


def _last_json(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mlflows_sessions_wait_lock_wait_s_only_after_wait_for_locks(tmp_path: Path, mlflow_db: str) -> None:
    seen = _last_json([SESSION_WAIT, mlflow_db, str(tmp_path / "artifacts")])
    assert seen["before"] == [False, 20_000]  # MLflow's own per-session wait: importing tl-bench left it alone
    assert seen["after"] == [True, LOCK_WAIT_S * 1000]


@pytest.mark.slow
def test_the_cli_installs_the_wait_for_store_commands_only(tmp_path: Path) -> None:
    seen = _last_json([CLI, str(tmp_path / "missing.yaml")])
    assert seen["list"] == 0 and seen["mlflow_after_list"] is False
    assert seen["doctor"] == 2  # the study file is missing: a user error, after the wait was installed
    assert seen["waiting_after_doctor"] is True
