"""Helpers of the reliability tests: tiny study files, the CLI as a subprocess, and both stores read back.

Every test drives the real ``tl-bench`` command against real stores; these
helpers only start processes, wait for states and read what the stores hold.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

T = TypeVar("T")
STUDY = "rel"  # spec name of every study written here
LONG_EPOCHS = 400  # a trial long enough to be caught RUNNING and stopped


def spec_data(**overrides: Any) -> dict[str, Any]:
    """A study on digits with test_resnet at 16 px: a trial takes about a second."""
    data: dict[str, Any] = {
        "name": STUDY,
        "datasets": [{"name": "digits", "img_size": 16, "train_size": 200, "val_size": 100}],
        "space": {
            "backbones": ["test_resnet"],
            "freeze_depth": [0, "all"],
            "neck": ["gap", "gem"],
            "head": ["linear"],
            "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
        },
        "fixed": {"epochs": 1, "batch_size": 100},
        "sampler": {"name": "random", "seed": 0},
        "budget": {"n_trials": 2},
    }
    data.update(overrides)
    return data


def write_spec(folder: Path, data: dict[str, Any] | None = None, name: str = "study.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data if data is not None else spec_data(), sort_keys=False))
    return path


def long_trial_spec(folder: Path) -> Path:
    """Trial 0 takes one epoch, trial 1 hundreds (to be stopped), trial 2 two; budget 2.

    Baselines are enqueued only when distinct, hence 1 and 2 epochs."""
    data = spec_data(
        space={"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear"],
               "epochs": [1, 2, LONG_EPOCHS]},
        fixed={"batch_size": 100, "lr": 1.0e-2},
        baselines=[{"epochs": 1}, {"epochs": LONG_EPOCHS}, {"epochs": 2}],
    )
    return write_spec(folder, data)


def _default_sigint() -> None:
    # A shell that starts jobs in the background ignores SIGINT for them; a terminal does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tlb_popen(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``tl-bench ARGS`` in its own session, as a user would start it from a terminal."""
    return subprocess.Popen(
        [sys.executable, "-m", "tl_bench", *args], cwd=cwd, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_default_sigint,
    )


def tlb(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = tlb_popen(args, cwd=cwd, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"tl-bench {' '.join(args)} ran past {timeout} s; stderr: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s.

    A store being written by a live worker may refuse a read now and then: such
    errors are retried, and the last one is shown if the wait times out.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as err:  # noqa: BLE001 - any store error is worth another poll
            last, value = err, None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended (code {proc.returncode}) before {what}: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last error: {last!r})")


class Processes:
    """``tl-bench`` processes of one test; whatever still runs at the end is killed with its group."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = tlb_popen(args, cwd=cwd, env=env)
        self.started.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / 'runs' / name}"


def load_trials(storage: str, study: str = f"{STUDY}/digits") -> list[optuna.trial.FrozenTrial]:
    """Trials of a study, or [] while it does not exist yet; a SQLite file is opened read-only,
    so polling never races the worker that creates its schema."""
    if storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///"):]
        if not Path(path).exists():
            return []
        storage = f"sqlite:///file:{path}?mode=ro&uri=true"
    elif storage.startswith("postgresql://"):  # plain Optuna, with the driver the dev extra installs
        storage = storage.replace("postgresql://", "postgresql+psycopg2://", 1)
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # no such study yet
        return []
    except Exception as err:  # the schema is still being written
        text = f"{err} {err.__cause__}"
        if "no such table" in text or "readonly" in text or "locked" in text:
            return []
        raise


def running_with_run(storage: str, number: int) -> optuna.trial.FrozenTrial | None:
    """Trial ``number`` once it is RUNNING and its MLflow run exists."""
    for trial in load_trials(storage):
        if trial.number == number and trial.state.name == "RUNNING" and trial.user_attrs.get("mlflow_run_id"):
            return trial
    return None


def all_runs(tracking_uri: str, experiment: str = STUDY) -> list[Any]:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return list(client.search_runs([found.experiment_id], run_view_type=ViewType.ALL, max_results=5000))


def trial_runs(tracking_uri: str, experiment: str = STUDY) -> list[Any]:
    return [r for r in all_runs(tracking_uri, experiment) if r.data.tags.get("tlb.kind") == "trial"]


def parent_runs(tracking_uri: str, experiment: str = STUDY) -> list[Any]:
    return [r for r in all_runs(tracking_uri, experiment) if r.data.tags.get("tlb.kind") == "study"]


def run_record(run: Any) -> tuple[Any, ...]:
    """What a finished run holds: compared before and after to prove it was not touched."""
    return (run.info.status, run.info.end_time, dict(run.data.params), dict(run.data.metrics), dict(run.data.tags))


def trial_record(trial: optuna.trial.FrozenTrial) -> tuple[Any, ...]:
    return (trial.number, trial.state, trial.values, trial.params, trial.user_attrs, trial.datetime_complete)


_TABLES = {
    "optuna.db": ("studies", "trials", "trial_values", "trial_params", "trial_user_attributes", "study_user_attributes"),
    "mlflow.db": ("experiments", "runs", "tags", "params", "metrics"),
}


@dataclass
class Case:
    """A catalogued bad input: ``setup`` writes its files into a folder and returns the command line
    (run there); ``wrong`` and ``accepted`` are regexes the one line must match."""

    setup: Callable[[Path], list[str]]
    wrong: str
    accepted: str


def store_snapshot(folder: Path) -> dict[str, Any]:
    """Row counts of the default SQLite stores under ``folder/runs`` (None where a file does not exist)."""
    out: dict[str, Any] = {}
    for name, tables in _TABLES.items():
        path = folder / "runs" / name
        if not path.exists():
            out[name] = None
            continue
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                have = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
                out[name] = {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables if t in have}
        except sqlite3.DatabaseError:  # not a database (a case of its own): its bytes must stay as they were
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    artifacts = folder / "runs" / "artifacts"
    out["artifacts"] = sorted(str(p.relative_to(artifacts)) for p in artifacts.rglob("*")) if artifacts.exists() else []
    return out
