"""MLflow conventions, in one place.

An experiment per study spec, a parent run per dataset study, a nested child
run per trial. Everything goes through ``MlflowClient`` (no global active-run
state), so several workers and threads can share a store. A trial costs five
small writes: the run with its tags, one ``log_batch`` of params, the dataset
input, one ``log_batch`` of curves, results and state, and the status change;
the config artifact goes straight to the run's artifact store.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# MLflow's usage telemetry phones home from a background thread; a benchmark tool that often runs
# offline keeps it off unless the user asks for it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

import tl_bench
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.errors import StorageError

KIND = "tlb.kind"
STUDY = "tlb.study"
DATASET = "tlb.dataset"
OPTUNA_STUDY = "tlb.optuna_study"
TRIAL = "tlb.trial"
STATE = "tlb.state"
ERROR = "tlb.error"
N_STAGES = "tlb.n_stages"
VERSION = "tlb.version"
HOST = "tlb.host"
PID = "tlb.pid"

# Optuna trial state -> MLflow run status.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "INTERRUPTED": "KILLED"}
CURVES = ("train_loss", "val_acc", "val_loss", "val_top5", "lr")
_MAX_TAG = 5000


def trial_run_name(config: TrialConfig, trial_number: int) -> str:
    weights = config.weights if len(config.weights) <= 24 else "ckpt"
    return f"{config.backbone}-{weights}-f{config.freeze_depth}-{config.neck}-{config.head}-t{trial_number}"


def config_params(config: TrialConfig) -> dict[str, str]:
    """Every TrialConfig field as a flat MLflow param."""
    out = {}
    for key, value in config.to_dict().items():
        out[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    return out


def is_server(tracking_uri: str | None) -> bool:
    """An MLflow tracking server (as opposed to a store this process opens itself)."""
    return bool(tracking_uri) and str(tracking_uri).startswith(("http://", "https://"))


def check_server(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """StorageError within seconds when nothing answers at a tracking server URL.

    MLflow retries every request for minutes; a mistyped or stopped server
    should fail the command at once. Any HTTP answer counts as reachable.
    """
    import requests

    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException as err:
        raise StorageError(
            f"MLflow tracking server {tracking_uri!r} does not answer ({type(err).__name__}); "
            "accepted: the URL of a running `mlflow server`, a sqlite:/// path or a folder"
        ) from None


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Tracker:
    """Writes the study record; ``enabled=False`` makes every call a no-op (for benchmarks)."""

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        *,
        artifact_location: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        self.client: MlflowClient | None = None
        self.experiment_id = ""
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact root, for runs this tracker started
        if enabled:
            if is_server(tracking_uri):
                check_server(tracking_uri)
                artifact_location = None  # the server's artifact root, reachable from every host
            self.client = MlflowClient(tracking_uri)
            self.experiment_id = self._experiment(experiment, artifact_location)

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        assert self.client is not None
        try:
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                return found.experiment_id
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as err:
            # Two workers may create it at once: the loser reads the winner's.
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            raise StorageError(
                f"MLflow tracking URI {self.tracking_uri!r} cannot be used: {str(err).splitlines()[0]}"
            ) from err
        except Exception as err:  # connection errors come in many types
            raise StorageError(
                f"MLflow tracking URI {self.tracking_uri!r} is unreachable: {str(err).splitlines()[0][:200]}; "
                "accepted: a sqlite:/// path, a folder, or a running tracking server URL"
            ) from err

    # -- parent run -------------------------------------------------------
    def find_parent_run(self, optuna_study: str) -> str | None:
        if not self.enabled:
            return None
        assert self.client is not None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{KIND}` = 'study' and tags.`{OPTUNA_STUDY}` = '{optuna_study}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        return runs[0].info.run_id if runs else None

    def create_parent_run(self, *, study: str, dataset: str, optuna_study: str, description: str = "") -> str:
        if not self.enabled:
            return ""
        assert self.client is not None
        tags = {KIND: "study", STUDY: study, DATASET: dataset, OPTUNA_STUDY: optuna_study, VERSION: tl_bench.__version__}
        if description:
            tags[MLFLOW_RUN_NOTE] = description
        run = self.client.create_run(self.experiment_id, run_name=dataset, tags=tags)
        return run.info.run_id

    def reopen_parent_run(self, run_id: str) -> None:
        if self.enabled and run_id:
            assert self.client is not None
            self.client.update_run(run_id, status="RUNNING")

    # -- trial runs -------------------------------------------------------
    def start_trial(
        self,
        parent_run_id: str,
        config: TrialConfig,
        *,
        study: str,
        dataset: str,
        trial_number: int,
        fingerprint: str | None = None,
        extra_tags: dict[str, str] | None = None,
    ) -> str:
        """Create the child run with every param and tag; returns its run id."""
        if not self.enabled:
            return ""
        assert self.client is not None
        tags = {
            KIND: "trial",
            STUDY: study,
            DATASET: dataset,
            TRIAL: str(trial_number),
            STATE: "RUNNING",
            VERSION: tl_bench.__version__,
            **(extra_tags or {}),
        }
        if parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=trial_run_name(config, trial_number), tags=tags)
        run_id = run.info.run_id
        self._artifact_uris[run_id] = run.info.artifact_uri
        params = [Param(k, v[:6000]) for k, v in config_params(config).items()]
        for chunk in _chunks(params, 100):
            self.client.log_batch(run_id, params=chunk)
        if fingerprint:
            source = json.dumps({"dataset": config.dataset, "img_size": config.img_size, "train_size": config.train_size,
                                 "val_size": config.val_size, "split_seed": config.split_seed})
            dataset = Dataset(name=config.dataset, digest=fingerprint[:36], source_type="tl-bench", source=source)
            self.client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
        return run_id

    def finish_trial(
        self,
        run_id: str,
        state: str,
        *,
        result: TrialResult | None = None,
        history: Sequence[dict[str, float]] = (),
        error: str | None = None,
        config: TrialConfig | None = None,
    ) -> None:
        """One batched write of curves, results and state, then the run's terminal status."""
        if not self.enabled or not run_id:
            return
        assert self.client is not None
        artifact_uri = self._artifact_uris.pop(run_id, None)
        now = int(time.time() * 1000)
        metrics: list[Metric] = []
        for row in history:
            step = int(row.get("epoch", 0))
            for name in CURVES:
                value = row.get(name)
                if value is not None and math.isfinite(value):
                    metrics.append(Metric(f"epoch_{name}", float(value), now, step))
        if result is not None:
            for name, value in result.metrics().items():
                if math.isfinite(value):
                    metrics.append(Metric(name, value, now, 0))
        tags = [RunTag(STATE, state)]
        if result is not None:
            tags.append(RunTag(N_STAGES, str(result.n_stages)))
        if error:
            tags.append(RunTag(ERROR, error[:_MAX_TAG]))
        for i, chunk in enumerate(_chunks(metrics, 1000) if metrics else [[]]):
            self.client.log_batch(run_id, metrics=chunk, tags=tags if i == 0 else [])
        if config is not None:  # one artifact: the resolved config, and what the metrics cannot hold
            record = {"config": config.to_dict(), "history": list(history)}
            if result is not None:
                record["test_per_class_acc"] = result.test_per_class_acc
            self._log_json(run_id, artifact_uri, record, "trial_config.json")
        self.client.set_terminated(run_id, status=RUN_STATUS.get(state, "FAILED"))

    def _log_json(self, run_id: str, artifact_uri: str | None, record: dict[str, Any], name: str) -> None:
        """``log_dict``; with the run's artifact root known (runs this tracker started), without looking it up."""
        assert self.client is not None
        if artifact_uri is None:
            self.client.log_dict(run_id, record, name)
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(record, indent=2))
            get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri).log_artifact(str(path))

    def end_run(self, run_id: str, state: str, error: str | None = None) -> None:
        """Mark a run as ended without results (repairs and interrupted trials)."""
        if not self.enabled or not run_id:
            return
        assert self.client is not None
        tags = [RunTag(STATE, state)] + ([RunTag(ERROR, error[:_MAX_TAG])] if error else [])
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, status=RUN_STATUS.get(state, "FAILED"))

    # -- study summary ----------------------------------------------------
    def log_summary(self, parent_run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
        if not self.enabled or not parent_run_id:
            return
        assert self.client is not None
        now = int(time.time() * 1000)
        ms = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(float(v))]
        ts = [RunTag(k, str(v)[:_MAX_TAG]) for k, v in tags.items()]
        for chunk in _chunks(ms, 1000) if ms else [[]]:
            self.client.log_batch(parent_run_id, metrics=chunk)
        for chunk in _chunks(ts, 100):
            self.client.log_batch(parent_run_id, tags=chunk)

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        if self.enabled and run_id:
            assert self.client is not None
            self.client.log_artifact(run_id, path, artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        if self.enabled and run_id:
            assert self.client is not None
            self.client.log_text(run_id, text, artifact_file)

    def close_parent(self, run_id: str) -> None:
        if self.enabled and run_id:
            assert self.client is not None
            self.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FINISHED))

    def trial_runs(self, parent_run_id: str) -> list[Any]:
        """Every child run of a parent (all pages)."""
        if not self.enabled:
            return []
        assert self.client is not None
        out: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'",
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                page_token=token,
            )
            out.extend(page)
            token = page.token
            if not token:
                return out


__all__ = ["Tracker", "RUN_STATUS", "trial_run_name", "config_params", "is_server", "check_server"]
