"""Writing the study record: experiments, parent and trial runs, batched logging, artifacts.

Everything goes through ``MlflowClient`` (no global active-run state), so
several workers and threads can share a store. A trial costs five small
writes: the run with its tags, one ``log_batch`` of params, the dataset input,
one ``log_batch`` of curves, results and state, and the status change; the
config artifact goes straight to the run's artifact store.

Any error of the store in a Tracker call (locked past the wait, read-only,
full disk, a server gone) is raised as one ``StorageError`` line naming the
store and what to do (``tl_bench.faults``).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

import tl_bench
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.faults import store_error
from tl_bench.tracking.names import (
    CURVES,
    DATASET,
    ERROR,
    KIND,
    KIND_STUDY,
    N_STAGES,
    OPTUNA_STUDY,
    OPTUNA_STUDY_ID,
    RUN_NOTE,
    RUN_STATUS,
    STATE,
    STUDY,
    STUDY_FILE_DIR,
    VERSION,
    config_params,
    result_flags,
    shown_value,
    result_metrics,
    trial_run_name,
    trial_tags,
)
from tl_bench.tracking.assets import ASSETS_EXPERIMENT, ensure_assets_experiment, plotly_loader, shared_plotly_run
from tl_bench.tracking.batch import log_batches
from tl_bench.tracking.guard import _guarded, _now_ms
from tl_bench.tracking.pretrain_record import PretrainRecords
from tl_bench.tracking.read import search_runs
from tl_bench.tracking.store import check_artifact_home, check_tracking_uri, creating_store, is_server, store_label
from tl_bench.tracking.view import experiment_tags

DATASET_ATTEMPTS = 3  # concurrent writers of one new dataset: each retry finds it stored by another


class Tracker(PretrainRecords):
    """Writes the study record; ``enabled=False`` makes every call a no-op (for benchmarks)."""

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        *,
        artifact_location: str | None = None,
        enabled: bool = True,
        write: bool = True,
    ) -> None:
        """``write=False`` when this tracker only reads (a report): a read-only store is then fine."""
        self.enabled = enabled
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None
        self.experiment_id = ""
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact root, for runs this tracker started
        self._plotly: str | None = None
        self._artifact_location: str | None = None
        self._write = write
        if enabled:
            check_tracking_uri(tracking_uri or "", write=write)
            if is_server(tracking_uri):
                artifact_location = None  # the server's artifact root, reachable from every host
            with creating_store(tracking_uri or "") if write else contextlib.nullcontext():
                self._client = MlflowClient(tracking_uri)  # MLflow creates a new store's schema here
            self._artifact_location = artifact_location
            self.experiment_id = self._experiment(experiment, artifact_location)

    @_guarded
    def _experiment(self, name: str, artifact_location: str | None) -> str:
        assert self._client is not None
        try:
            found = self._client.get_experiment_by_name(name)
            if found is not None:
                if self._write:
                    check_artifact_home(self.tracking_uri or "", name, found.artifact_location, artifact_location)
                if found.lifecycle_stage == "deleted":
                    self._client.restore_experiment(found.experiment_id)
                return found.experiment_id
            if name != ASSETS_EXPERIMENT:  # older than every study experiment: listed after them
                ensure_assets_experiment(self._client, artifact_location)
            return self._client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            # Two workers may create it at once: the loser reads the winner's.
            found = self._client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            raise

    # -- reading back -----------------------------------------------------
    def runs(self, filter_string: str = "") -> Iterator[Run]:
        """Every active run of this experiment that matches, all pages."""
        if not self.enabled:
            return iter(())
        assert self._client is not None
        return self._guarded_pages(search_runs(self._client, [self.experiment_id], filter_string))

    def _guarded_pages(self, runs: Iterator[Run]) -> Iterator[Run]:
        try:
            yield from runs
        except Exception as err:  # a page that fails to load fails like any other call
            raise store_error(err, store_label(self.tracking_uri), self.tracking_uri or "") from err

    @_guarded
    def run_status(self, run_id: str) -> str:
        """The run's MLflow status (RUNNING, FINISHED, KILLED, FAILED)."""
        assert self._client is not None
        return str(self._client.get_run(run_id).info.status)

    # -- parent run -------------------------------------------------------
    def find_parent_run(self, optuna_study: str, study_id: str | None = None) -> str | None:
        """The first parent run of an Optuna study (workers that start together may each make one); with
        ``study_id`` (``tlb.optuna_study_id``) only that study's, not a deleted namesake's."""
        query = f"tags.`{KIND}` = '{KIND_STUDY}' and tags.`{OPTUNA_STUDY}` = '{optuna_study}'"
        found = list(self.runs(query + (f" and tags.`{OPTUNA_STUDY_ID}` = '{study_id}'" if study_id else "")))
        return min(found, key=lambda r: (r.info.start_time or 0, r.info.run_id)).info.run_id if found else None

    @_guarded
    def describe_experiment(self, description: str = "") -> None:
        """Open the experiment in MLflow's model-training view on its trials, with ``description``
        (``tracking.view``); only tags that differ are written."""
        if not self.enabled:
            return
        assert self._client is not None
        current = self._client.get_experiment(self.experiment_id).tags
        for key, value in experiment_tags(description).items():
            if current.get(key) != value:
                self._client.set_experiment_tag(self.experiment_id, key, value)

    @_guarded
    def create_parent_run(
        self, *, study: str, dataset: str, optuna_study: str, description: str = "",
        params: Mapping[str, str] | None = None, study_file: str | None = None, study_id: str = "",
    ) -> str:
        """The dataset study's run: ``params`` (the search settings, flat) and ``study_file`` (logged under
        ``study/``) are written once, when it is made."""
        if not self.enabled:
            return ""
        assert self._client is not None
        tags = {KIND: KIND_STUDY, STUDY: study, DATASET: dataset, OPTUNA_STUDY: optuna_study,
                VERSION: tl_bench.__version__}
        if study_id:
            tags[OPTUNA_STUDY_ID] = study_id
        if description:
            tags[RUN_NOTE] = description
        run = self._client.create_run(self.experiment_id, run_name=dataset, tags=tags)
        if params:
            self._log(run.info.run_id, params=params)
        if study_file and Path(study_file).is_file():
            get_artifact_repository(run.info.artifact_uri, tracking_uri=self.tracking_uri).log_artifact(
                study_file, STUDY_FILE_DIR)
        return run.info.run_id

    @_guarded
    def reopen_parent_run(self, run_id: str) -> None:
        if self.enabled and run_id:
            assert self._client is not None
            self._client.update_run(run_id, status="RUNNING")
            if STATE in self._client.get_run(run_id).data.tags:  # closed as interrupted before: running again
                self._client.delete_tag(run_id, STATE)

    @_guarded
    def close_parent(self, run_id: str, status: str = RunStatus.to_string(RunStatus.FINISHED)) -> None:
        """End a parent run: FINISHED, or KILLED for a study stopped short of its budget."""
        if self.enabled and run_id:
            assert self._client is not None
            self._client.set_terminated(run_id, status=status)

    # -- trial runs -------------------------------------------------------
    @_guarded
    def start_trial(
        self,
        parent_run_id: str,
        config: TrialConfig | Mapping[str, Any],
        *,
        study: str,
        dataset: str,
        trial_number: int,
        fingerprint: str | None = None,
        extra_tags: dict[str, str] | None = None,
    ) -> str:
        """Create the child run with every param and tag; returns its run id. ``config`` may be the
        plain values of a config that could not be built, so that its failure is recorded too."""
        if not self.enabled:
            return ""
        assert self._client is not None
        tags = trial_tags(study=study, dataset=dataset, trial_number=trial_number, state="RUNNING",
                          parent_run_id=parent_run_id) | (extra_tags or {})
        run = self._client.create_run(self.experiment_id, run_name=trial_run_name(config, trial_number, dataset),
                                      tags=tags)
        run_id = run.info.run_id
        self._artifact_uris[run_id] = run.info.artifact_uri
        self._log(run_id, params=config_params(config))
        if fingerprint and isinstance(config, TrialConfig):
            source = json.dumps({"dataset": config.dataset, "img_size": config.img_size, "train_size": config.train_size,
                                 "val_size": config.val_size, "split_seed": config.split_seed})
            dataset_input = Dataset(name=config.dataset, digest=fingerprint[:36], source_type="tl-bench", source=source)
            self._log_dataset(run_id, DatasetInput(dataset_input, [InputTag("mlflow.data.context", "train")]))
        return run_id

    def _log_dataset(self, run_id: str, dataset_input: DatasetInput) -> None:
        """Link the run to its dataset, storing the dataset when it is new to the experiment.

        Workers that start together may both find the dataset new and insert it: one insert
        fails on the store's uniqueness rule and is rolled back whole; its retry finds the
        dataset stored and only adds the link.
        """
        assert self._client is not None
        for attempt in range(DATASET_ATTEMPTS):
            try:
                self._client.log_inputs(run_id, [dataset_input])
                return
            except MlflowException as err:
                if attempt == DATASET_ATTEMPTS - 1 or "unique constraint" not in str(err).lower():
                    raise

    @_guarded
    def finish_trial(
        self,
        run_id: str,
        state: str,
        *,
        result: TrialResult | None = None,
        history: Sequence[dict[str, float]] = (),
        error: str | None = None,
        config: TrialConfig | None = None,
        end_ms: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """One batched write of curves, results and state, then the run's terminal status
        (``end_ms``: its end time when not now)."""
        if not self.enabled or not run_id:
            return
        assert self._client is not None
        artifact_uri = self._artifact_uris.pop(run_id, None)
        now = _now_ms()
        metrics: list[Metric] = []
        for row in history:
            step = int(row.get("epoch", 0))
            for name in CURVES:
                value = row.get(name)
                if value is not None and math.isfinite(value):
                    metrics.append(Metric(f"epoch_{name}", shown_value(value), now, step))
        if result is not None:
            for name, value in result_metrics(result).items():
                if math.isfinite(value):
                    metrics.append(Metric(name, shown_value(value), now, 0))
        tags = {STATE: state, **(tags or {})}
        if result is not None:
            tags[N_STAGES] = str(result.n_stages)
            tags.update(result_flags(result))
        if error:
            tags[ERROR] = error
        self._log(run_id, metrics=metrics, tags=tags)
        if config is not None:  # one artifact: the resolved config, and what the metrics cannot hold
            record = {"config": config.to_dict(), "history": list(history)}
            if result is not None:
                record["test_per_class_acc"] = result.test_per_class_acc
            self._log_json(run_id, artifact_uri, record, "trial_config.json")
        self._client.set_terminated(run_id, status=RUN_STATUS.get(state, "FAILED"), end_time=end_ms)

    def _log_json(self, run_id: str, artifact_uri: str | None, record: dict[str, Any], name: str) -> None:
        """``log_dict``; with the run's artifact root known (runs this tracker started), without looking it up."""
        assert self._client is not None
        if artifact_uri is None:
            self._client.log_dict(run_id, record, name)
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(record, indent=2))
            get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri).log_artifact(str(path))

    @_guarded
    def end_run(self, run_id: str, state: str, error: str | None = None, *, tags: Mapping[str, str] | None = None) -> None:
        """Mark a run as ended without results (repairs and interrupted trials); ``tags`` go in the same write."""
        if not self.enabled or not run_id:
            return
        assert self._client is not None
        self._log(run_id, tags={STATE: state, **({ERROR: error} if error else {}), **(tags or {})})
        self._client.set_terminated(run_id, status=RUN_STATUS.get(state, "FAILED"))

    @_guarded
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if self.enabled and run_id:
            self._log(run_id, tags=tags)

    def _log(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        metrics: Sequence[Metric] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        assert self._client is not None
        log_batches(self._client, run_id, params=params, metrics=metrics, tags=tags)

    # -- study summary ----------------------------------------------------
    @_guarded
    def log_summary(self, parent_run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
        if not self.enabled or not parent_run_id:
            return
        numbers = [Metric(k, float(v), _now_ms(), 0) for k, v in metrics.items()
                   if v is not None and math.isfinite(float(v))]
        self._log(parent_run_id, metrics=numbers, tags=tags)

    @_guarded
    def plotly_head(self) -> str | None:
        """The ``<script>`` that HTML artifacts load the store's one copy of plotly.js with
        (``tracking.assets``); None when tracking is off."""
        if not self.enabled:
            return None
        assert self._client is not None
        if self._plotly is None:
            self._plotly = plotly_loader(shared_plotly_run(self._client, self._artifact_location))
        return self._plotly

    @_guarded
    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        if self.enabled and run_id:
            assert self._client is not None
            self._client.log_artifact(run_id, path, artifact_path)

    @_guarded
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        if self.enabled and run_id:
            assert self._client is not None
            self._client.log_text(run_id, text, artifact_file)


__all__ = ["Tracker"]
