"""A PostgreSQL server that restarts under a study: storage calls wait for it and go on; one that stays
away ends the command with the true reason. A restart is made real without restarting the shared server:
the study's database refuses connections (``ALLOW_CONNECTIONS false``), every backend connected to it is
terminated, and connections are let in again after the downtime."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from tl_bench.errors import StorageError
from tl_bench.study import reconnect
from tl_bench.study.storage import make_storage

from reliability_support import Processes, load_trials, spec_data, wait_for, write_spec

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
optuna.logging.set_verbosity(optuna.logging.WARNING)


class Database:
    """A fresh database on the shared server, and an admin connection that can take it down."""

    def __init__(self, admin: Any) -> None:
        self.admin, self.name = admin, f"tlb_{uuid.uuid4().hex[:12]}"
        self.url = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{self.name}"
        self._sql(f"CREATE DATABASE {self.name}")

    def _sql(self, statement: str, *args: Any) -> None:
        self.admin.cursor().execute(statement, args)

    def down(self) -> None:
        """Refuse new connections and drop every open one, as a server going down does."""
        self._sql(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        self._sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                  "AND pid <> pg_backend_pid()", self.name)

    def up(self) -> None:
        self._sql(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")

    def restart(self, down_s: float) -> threading.Thread:
        """Down now, up again after ``down_s`` seconds (in the background)."""
        self.down()
        thread = threading.Timer(down_s, self.up)
        thread.start()
        return thread

    def drop(self) -> None:
        self.up()
        self._sql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


@pytest.fixture
def database() -> Iterator[Database]:
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=3, **PG)
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL does not answer on 127.0.0.1:5432 ({str(err).strip().splitlines()[0]})")
    admin.autocommit = True
    db = Database(admin)
    yield db
    db.drop()
    admin.close()


def test_a_storage_call_during_a_one_second_restart_waits_for_the_server(database: Database) -> None:
    storage = make_storage(database.url)
    study = optuna.create_study(study_name="s", storage=storage)
    study.set_user_attr("before", 1)
    back = database.restart(1.0)  # the pool's connection is gone and new ones are refused for 1 s
    started = time.monotonic()
    study.set_user_attr("during", 2)  # was: StorageInternalError "... invalid data ... exceeding max length"
    assert time.monotonic() - started >= 0.5  # it did wait for the server
    back.join()
    assert optuna.load_study(study_name="s", storage=storage).user_attrs == {"before": 1, "during": 2}


def test_a_server_that_stays_away_is_named_with_the_true_reason(database: Database,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    storage = make_storage(database.url)
    study = optuna.create_study(study_name="s", storage=storage)
    monkeypatch.setattr(reconnect, "RECONNECT_WAITS_S", (0.1, 0.1))
    database.down()
    with pytest.raises(StorageError) as raised:
        study.set_user_attr("during", 2)
    line = str(raised.value)
    assert "lost its database connection" in line and "not currently accepting connections" in line, line
    assert "exceeding max length" not in line and "\n" not in line


@pytest.mark.slow
def test_a_trial_rides_out_a_restart_of_the_server(tmp_path: Path, database: Database, mlflow_db: str,
                                                   processes: Processes) -> None:
    """Every epoch reports to the storage (a median pruner): a restart mid-trial must not fail it."""
    spec = write_spec(tmp_path, spec_data(
        space={"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"]},
        datasets=[{"name": "digits", "img_size": 16, "train_size": 100, "val_size": 50}],
        fixed={"epochs": 25, "batch_size": 100, "lr": 1.0e-2},
        pruner={"name": "median", "n_startup_trials": 5}, budget={"n_trials": 1}, storage=database.url))
    proc = processes.start(["run", spec.name, "--quiet"], cwd=tmp_path)

    def epochs_after(done: int) -> int | None:
        """Epochs trial 0 has reported, once they are more than ``done``."""
        running = [t for t in load_trials(database.url) if t.state.name == "RUNNING"]
        reported = len(running[0].intermediate_values) if running else 0
        return reported if reported > done else None

    first = wait_for(lambda: epochs_after(0), timeout=240, what="trial 0 reporting epochs", proc=proc)
    started = time.monotonic()
    second = wait_for(lambda: epochs_after(first), timeout=120, what="another epoch", proc=proc)
    epoch_s = (time.monotonic() - started) / (second - first)
    # Down for longer than an epoch, so that at least one report finds the server gone.
    database.restart(min(max(1.0, 2.5 * epoch_s), 10.0)).join()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "exceeding max length" not in err
    (trial,) = load_trials(database.url)
    assert trial.state.name == "COMPLETE" and "error" not in trial.user_attrs
    assert len(trial.intermediate_values) == 25  # every epoch's report is stored
