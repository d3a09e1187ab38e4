"""Logged models left PENDING: a process killed while it logged a model never finalised it.

``log_trial_model`` creates the model record (PENDING), writes its files, links it to its run and
only then marks it READY; a model that never became READY is no kept model (``kept_models`` skips
it). Once its writer is gone it is finished when its files are whole (the model loads and predicts
its own input example), else removed: a half-written model can never be loaded.
"""

from __future__ import annotations

import tempfile

import mlflow.pyfunc
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tl_bench.tracking.logged_models import client_for, filter_value, logged_models, quiet_mlflow
from tl_bench.tracking.names import OPTUNA_STUDY, TRIAL


def pending_models(tracking_uri: str, experiment_id: str, optuna_study: str) -> list[LoggedModel]:
    """The PENDING models of an Optuna study's trials (being written now, or left by a dead writer)."""
    query = f"tags.`{OPTUNA_STUDY}` = {filter_value('study', optuna_study)}"
    found = logged_models(client_for(tracking_uri), [experiment_id], query)
    return [m for m in found if m.status == LoggedModelStatus.PENDING and m.tags.get(TRIAL, "").isdigit()]


def files_whole(tracking_uri: str, model: LoggedModel) -> bool:
    """Whether the model's files are all there: it loads and predicts the input example saved with it."""
    try:
        with tempfile.TemporaryDirectory() as tmp, quiet_mlflow():
            get_artifact_repository(model.artifact_location, tracking_uri=tracking_uri).download_artifacts("", tmp)
            example = Model.load(tmp).load_input_example(tmp)
            if example is None:
                return False
            mlflow.pyfunc.load_model(tmp).predict(example)
    except Exception:  # noqa: BLE001 - a file missing or cut short fails somewhere in loading
        return False
    return True


def finish_model(tracking_uri: str, model: LoggedModel) -> None:
    """Do what ``log_trial_model`` left undone: link the model to its run, mark it READY."""
    client = client_for(tracking_uri)
    run_id = model.source_run_id
    if run_id:
        outputs = client.get_run(run_id).outputs
        if not any(o.model_id == model.model_id for o in (outputs.model_outputs if outputs else [])):
            client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)


__all__ = ["files_whole", "finish_model", "pending_models"]
