"""A writer of MLflow stores laid out like the studies write them, for the report tests
(leaderboard, export, dashboard, UI); its own tests check it against ``tl_bench.tracking.Tracker``."""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tl_bench.config import TrialConfig, TrialResult
from tl_bench.tracking import RUN_STATUS, Tracker, config_params, result_flags, result_metrics, trial_run_name

_CONFIG_FIELDS = set(TrialConfig.__dataclass_fields__)
_TEMPLATE: list[Path] = []


def empty_store_file() -> Path:
    """An empty, fully migrated MLflow SQLite file, made once per process: creating the
    schema takes seconds, copying it milliseconds."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="tlb-mlflow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        _TEMPLATE.append(folder / "mlflow.db")
    return _TEMPLATE[0]


class TrialStore:
    """A SQLite MLflow store in ``folder``: one experiment (the study), a parent run per
    dataset, nested trial runs with TrialConfig params and TrialResult metrics."""

    def __init__(self, folder: Path, study: str = "demo") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(empty_store_file(), folder / "mlflow.db")
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.study = study
        self.folder = folder
        self.experiment_id = self.client.create_experiment(study, artifact_location=(folder / "artifacts").as_uri())
        self.experiments = {study: self.experiment_id}
        self.parents: dict[tuple[str, str], str] = {}
        self._numbers = itertools.count()

    def experiment(self, study: str) -> str:
        """The experiment of ``study`` (one per study spec), created on first use."""
        if study not in self.experiments:
            location = (self.folder / f"artifacts-{study}").as_uri()
            self.experiments[study] = self.client.create_experiment(study, artifact_location=location)
        return self.experiments[study]

    def parent(self, dataset: str, study: str | None = None) -> str:
        study = study or self.study
        if (study, dataset) not in self.parents:
            tags = {"tlb.kind": "study", "tlb.study": study, "tlb.dataset": dataset,
                    "tlb.optuna_study": f"{study}/{dataset}"}
            run = self.client.create_run(self.experiment(study), run_name=dataset, tags=tags)
            self.parents[(study, dataset)] = run.info.run_id
        return self.parents[(study, dataset)]

    def trial(self, dataset: str = "digits", *, state: str = "COMPLETE", drop: tuple[str, ...] = (),
              n_stages: int = 4, study: str | None = None, tags: dict[str, str] | None = None,
              **values: Any) -> str:
        """One trial run (of ``study``, default the store's); ``values`` are TrialConfig fields and
        TrialResult fields, ``drop`` names metrics left out (as a failed trial leaves them)."""
        study = study or self.study
        values.setdefault("backbone", "test_resnet")
        config = TrialConfig(dataset=dataset, **{k: v for k, v in values.items() if k in _CONFIG_FIELDS})
        result_values = {"val_acc": 0.5, "test_acc": 0.5, "train_time_s": 1.0, "params_total": 2000,
                         "params_trainable": 1000, "n_stages": n_stages}
        result_values.update({k: v for k, v in values.items() if k not in _CONFIG_FIELDS})
        result = TrialResult(**result_values)
        metrics = {k: v for k, v in result_metrics(result).items() if k not in drop}
        number = next(self._numbers)
        tags = {"tlb.kind": "trial", "tlb.study": study, "tlb.dataset": dataset, "tlb.trial": str(number),
                "tlb.state": state, "tlb.n_stages": str(n_stages), MLFLOW_PARENT_RUN_ID: self.parent(dataset, study),
                **result_flags(result), **(tags or {})}
        run = self.client.create_run(self.experiment(study), run_name=trial_run_name(config, number, dataset), tags=tags)
        now = int(time.time() * 1000)
        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in config_params(config).items()],
        )
        self.client.set_terminated(run.info.run_id, RUN_STATUS[state])
        return run.info.run_id

    def importances(self, dataset: str, values: dict[str, float], n_trials: int | None = None) -> None:
        """``importance.*`` metrics of the dataset's parent run (with ``importance_trials`` when ``n_trials``)."""
        now = int(time.time() * 1000)
        metrics = [Metric(f"importance.{k}", v, now, 0) for k, v in values.items()]
        metrics += [Metric("importance_trials", float(n_trials), now, 0)] if n_trials is not None else []
        self.client.log_batch(self.parent(dataset), metrics=metrics)


def _run_layout(client: MlflowClient, run_id: str) -> tuple[set[str], set[str], set[str], str]:
    run = client.get_run(run_id)
    tags = {k for k in run.data.tags if k.startswith("tlb.") and k != "tlb.version"} | (
        {MLFLOW_PARENT_RUN_ID} & set(run.data.tags))
    return tags, set(run.data.params), set(run.data.metrics) - {"epoch_val_acc"}, run.info.status


def test_store_writes_what_the_tracker_writes(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, study="demo")
    ours = store.trial("digits", backbone="test_vit", freeze_depth="all", val_acc=0.7, test_acc=0.6)
    tracker = Tracker(store.uri, "demo")
    parent = tracker.create_parent_run(study="demo", dataset="digits", optuna_study="demo/digits")
    config = TrialConfig(dataset="digits", backbone="test_vit", freeze_depth="all")
    theirs = tracker.start_trial(parent, config, study="demo", dataset="digits", trial_number=7)
    result = TrialResult(val_acc=0.7, test_acc=0.6, n_stages=4, history=[{"epoch": 1, "val_acc": 0.7}])
    tracker.finish_trial(theirs, "COMPLETE", result=result, history=result.history)
    assert _run_layout(store.client, ours) == _run_layout(store.client, theirs)
    assert store.client.get_run(theirs).data.params["freeze_depth"] == "all"


def test_store_marks_pruned_and_failed_like_the_tracker(tmp_path: Path) -> None:
    store = TrialStore(tmp_path)
    statuses = {s: store.client.get_run(store.trial(state=s, drop=("test_acc",))).info.status
                for s in ("COMPLETE", "PRUNED", "FAIL")}
    assert statuses == {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
