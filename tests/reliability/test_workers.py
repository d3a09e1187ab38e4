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

from tl_bench.study.storage import SURPLUS
from tl_bench.study.workers import threads_per_worker

from reliability_support import (
    Processes,
    load_trials,
    parent_runs,
    spec_data,
    tlb,
    trial_runs,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.slow

BUDGET = 5
BASELINE = {"freeze_depth": "all", "neck": "gem"}
PG = {"host": "127.0.0.1", "port": 5432}


def _spec(folder: Path) -> Path:
    return write_spec(folder, spec_data(budget={"n_trials": BUDGET}, baselines=[BASELINE]))


def assert_study_complete(storage: str, tracking_uri: str) -> list[Any]:
    """Budget reached, every trial ended, trial numbers without gaps, one run per trial, one parent."""
    every = load_trials(storage)
    assert [t.number for t in every] == list(range(len(every)))
    # A trial asked for once other workers had taken the whole budget ends unrun, with no MLflow run.
    trials = [t for t in every if t.user_attrs.get("error") != SURPLUS]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == BUDGET, [t.state for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
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
    # Whichever worker ended the study summarised it and closed its parent run.
    assert parents[0].info.status == "FINISHED" and parents[0].data.metrics["n_complete"] >= 1
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parents[0].info.run_id}
    return trials


def test_three_local_workers_share_the_default_sqlite_stores(tmp_path: Path, mlflow_db: str) -> None:
    spec = _spec(tmp_path)
    done = tlb(["run", spec.name, "--workers", "3", "--quiet"], cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "locked" not in done.stderr  # no storage-lock error reaches the user
    trials = assert_study_complete(f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}", mlflow_db)
    assert len({t.user_attrs["pid"] for t in trials}) >= 2  # the work was shared


def test_each_local_worker_gets_its_own_device_and_a_share_of_the_cores(tmp_path: Path, mlflow_db: str) -> None:
    spec = write_spec(tmp_path, spec_data(budget={"n_trials": 6}))
    done = tlb(["run", spec.name, "--workers", "2", "--devices", "0,1", "--quiet"], cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = [t for t in load_trials(f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}") if "pid" in t.user_attrs]
    device_of_pid: dict[int, set[str]] = {}
    for trial in trials:
        device_of_pid.setdefault(trial.user_attrs["pid"], set()).add(trial.user_attrs["cuda_visible_devices"])
        assert trial.user_attrs["threads"] == threads_per_worker(2)
    assert all(len(devices) == 1 for devices in device_of_pid.values())  # a worker keeps its device
    seen = [next(iter(devices)) for devices in device_of_pid.values()]
    assert len(seen) == len(set(seen)) and set(seen) <= {"0", "1"}  # and no two workers share one
    runs = trial_runs(mlflow_db)
    assert {r.data.tags["tlb.cuda_visible_devices"] for r in runs} == set(seen)


def test_one_run_with_explicit_stores_closes_its_parent_and_names_its_store(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    storage, tracking = f"sqlite:///{tmp_path / 'elsewhere' / 'o.db'}", f"sqlite:///{tmp_path / 'elsewhere' / 'm.db'}"
    done = tlb(["run", spec.name, "--storage", storage, "--tracking-uri", tracking], cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_study_complete(storage, tracking)
    assert f"tl-bench ui --tracking-uri {tracking}" in done.stdout


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
    trials = assert_study_complete(storage, url)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both hosts ran trials
    # Artifacts went through the server into its artifact root, not into a folder of the worker.
    configs = list(artifacts.rglob("trial_config.json"))
    assert len(configs) == len(trials)
    assert not (tmp_path / "host" / "runs" / "artifacts").exists()


def test_dask_workers_survive_a_killed_worker_process(
    tmp_path: Path, postgres: Any, mlflow_server: tuple[str, Path], processes: Processes
) -> None:
    pytest.importorskip("distributed")
    url, _ = mlflow_server
    storage = postgres()
    # Trials of a few seconds, so that a worker is caught in the middle of one.
    spec = write_spec(tmp_path / "host", spec_data(budget={"n_trials": BUDGET}, baselines=[BASELINE],
                                                   fixed={"epochs": 25, "batch_size": 50}))
    proc = processes.start(["run", str(spec), "--storage", storage, "--tracking-uri", url, "--dask", "local",
                            "--workers", "2", "--quiet"], cwd=tmp_path)

    def running_in_a_dask_worker() -> Any:
        running = [t for t in load_trials(storage) if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs]
        return next((t for t in running if t.user_attrs["pid"] != proc.pid), None)

    victim = wait_for(running_in_a_dask_worker, timeout=240, what="a trial running in a Dask worker", proc=proc)
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    trials = assert_study_complete(storage, url)
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL and "stopped" in killed.user_attrs["error"]
    runs = {int(r.data.tags["tlb.trial"]): r for r in trial_runs(url)}
    assert runs[victim.number].info.status == "FAILED"  # MLflow agrees with Optuna about the killed trial
