"""Many workers on one storage: on this machine (``--workers 3``, SQLite) and as separate hosts would run
them (PostgreSQL for Optuna, an ``mlflow server`` on PostgreSQL for tracking). Either way the study
reaches its budget with no lost or duplicated trial and exactly one MLflow run per trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from reliability_support import (
    Processes,
    load_trials,
    parent_runs,
    spec_data,
    tlb,
    trial_runs,
    write_spec,
)

pytestmark = pytest.mark.slow

BUDGET = 5
BASELINE = {"freeze_depth": "all", "neck": "gem"}
PG = {"host": "127.0.0.1", "port": 5432}


def _spec(folder: Path) -> Path:
    return write_spec(folder, spec_data(budget={"n_trials": BUDGET}, baselines=[BASELINE]))


def assert_study_complete(storage: str, tracking_uri: str, workers: int) -> list[Any]:
    """Budget reached, every trial ended, trial numbers without gaps, one run per trial, one parent."""
    trials = load_trials(storage)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # Workers that check the budget at the same moment may each start one more trial.
    assert BUDGET <= len(finished) <= BUDGET + workers - 1, [t.state for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert [t.number for t in trials] == list(range(len(trials)))
    # The enqueued baseline ran once, however many workers could have popped it.
    baseline = [t for t in trials if "fixed_params" in t.system_attrs]
    assert len(baseline) == 1 and baseline[0].params["freeze_depth@test_resnet"] == "all"
    runs = trial_runs(tracking_uri)
    assert sorted(int(r.data.tags["tlb.trial"]) for r in runs) == [t.number for t in trials]
    by_id = {r.info.run_id: r for r in runs}
    assert len(by_id) == len(trials)
    for trial in trials:
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["tlb.trial"] == str(trial.number) and run.data.tags["tlb.state"] == trial.state.name
        if trial.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED" and run.data.metrics["val_acc"] == pytest.approx(trial.values[0])
    parents = parent_runs(tracking_uri)
    assert len(parents) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parents[0].info.run_id}
    return trials


def test_three_local_workers_share_the_default_sqlite_stores(tmp_path: Path, mlflow_db: str) -> None:
    spec = _spec(tmp_path)
    done = tlb(["run", spec.name, "--workers", "3", "--quiet"], cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "locked" not in done.stderr  # no storage-lock error reaches the user
    trials = assert_study_complete(f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}", mlflow_db, workers=3)
    assert len({t.user_attrs["pid"] for t in trials}) >= 2  # the work was shared


# -- many hosts --------------------------------------------------------------------------------


def _pg_connect(dbname: str):  # type: ignore[no-untyped-def]
    import psycopg2

    last: Exception | None = None
    for user in ("postgres", "root"):
        try:
            conn = psycopg2.connect(dbname=dbname, user=user, connect_timeout=3, **PG)
            conn.autocommit = True
            return conn, user
        except psycopg2.OperationalError as err:
            last = err
    raise last  # type: ignore[misc]


@pytest.fixture
def postgres() -> Iterator[Any]:
    """A factory of fresh PostgreSQL databases on 127.0.0.1:5432, each dropped at the end."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn, user = _pg_connect("postgres")
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL does not answer on 127.0.0.1:5432 ({str(err).strip().splitlines()[0]})")
    made: list[str] = []

    def create() -> str:
        name = f"tlb_{uuid.uuid4().hex[:12]}"
        conn.cursor().execute(f"CREATE DATABASE {name}")
        made.append(name)
        return f"postgresql://{user}@{PG['host']}:{PG['port']}/{name}"

    yield create
    for name in made:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path, postgres: Any) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` on loopback with a PostgreSQL backend store and a local artifact root."""
    backend = postgres().replace("postgresql://", "postgresql+psycopg2://", 1)
    artifacts = tmp_path / "server-artifacts"
    port = _free_port()
    log = open(tmp_path / "mlflow-server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--artifacts-destination",
         str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {(tmp_path / 'mlflow-server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=5)  # it holds nothing unsaved: every write is committed to PostgreSQL
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_workers_on_many_hosts_share_postgresql_and_a_tracking_server(
    tmp_path: Path, postgres: Any, mlflow_server: tuple[str, Path], processes: Processes
) -> None:
    url, artifacts = mlflow_server
    storage = postgres()
    spec = _spec(tmp_path / "host")
    # Each worker as another host would start it: its own process, the same two URLs, its own index.
    procs = [
        processes.start(["run", str(spec), "--storage", storage, "--tracking-uri", url, "--worker-index", str(i), "--quiet"],
                        cwd=tmp_path)
        for i in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-3000:]
    trials = assert_study_complete(storage, url, workers=2)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both hosts ran trials
    # Artifacts went through the server into its artifact root, not into a folder of the worker.
    configs = list(artifacts.rglob("trial_config.json"))
    assert len(configs) == len(trials)
    assert not (tmp_path / "host" / "runs" / "artifacts").exists()
