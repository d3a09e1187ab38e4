"""Evaluation reports, promotion decisions and combined models in MLflow: their names and their writes.

A registered version's report is the folder ``evaluation/`` on the version's run (``report.md`` and
``report.html`` open in the MLflow UI's artifact view without a download; ``val_predictions.csv``
is the per-image validation record the ``paired_bootstrap`` gate reads), and the version's
description links to it. ``tl-bench evaluate`` records a run of kind ``evaluation`` holding the
same folder; soups and ensembles are runs of kind ``soup`` and ``ensemble``.

These names extend ``tracking/names.py`` (tags of registered versions are plain, as the ones
``keep.py`` writes there: ``val_acc``, ``setting_val_acc_lcb``, ...).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tl_bench.errors import ModelNotFoundError, first_line
from tl_bench.tracking.loading import MODEL_WORDS, model_location
from tl_bench.tracking.logged_models import client_for, quiet_mlflow
from tl_bench.tracking.model_registry import resolve_version
from tl_bench.tracking.names import MODEL_ID

# Run kinds (values of tlb.kind).
KIND_EVALUATION = "evaluation"  # `tl-bench evaluate`: a report of a model on a split or an image folder
KIND_SOUP = "soup"  # kept models of one architecture averaged into one (greedy or uniform)
KIND_ENSEMBLE = "ensemble"  # kept models whose logits are averaged, served as one model
# Tags.
MEMBERS = "tlb.members"  # the trials a soup or an ensemble is made of, comma-separated
EVALUATED = "tlb.evaluated"  # what an evaluation run evaluated: the model reference, as given
EVALUATED_VERSION = "tlb.evaluated_version"  # the registered version it resolved to (NAME/VERSION)
EVALUATED_ON = "tlb.evaluated_on"  # the dataset key, or the image folder
TEMPERATURE = "temperature"  # version and logged-model tag: the temperature fitted on validation
REPORT_LINK = "report_link"  # version tag: the report's page in the MLflow UI (a route after '#')
PROMOTION_RULE = "promotion_rule"  # version tags: the gate's rule, its answer and why
PROMOTED = "promoted"
PROMOTION_REASON = "promotion_reason"
# Artifacts.
REPORT_DIR = "evaluation"
VAL_PREDICTIONS = "val_predictions.csv"  # id, label, predicted, correct: one row per validation image


def report_route(experiment_id: str, run_id: str, file: str = "report.md") -> str:
    """The MLflow UI route (after ``#``) that opens a report file of a run in its artifact view, in the
    model-training view (``tracking.view``)."""
    from tl_bench.tracking.view import run_path

    return run_path(experiment_id, run_id, f"{REPORT_DIR}/{file}")


def run_facts(tracking_uri: str, run_id: str) -> tuple[str, dict[str, str]]:
    """(experiment name, tags) of a run."""
    client = client_for(tracking_uri)
    run = client.get_run(run_id)
    return client.get_experiment(run.info.experiment_id).name, dict(run.data.tags)


def log_report(tracking_uri: str, run_id: str, folder: Path) -> str:
    """Log the files of ``folder`` as the run's ``evaluation/``; returns the UI route of its report.md."""
    client = client_for(tracking_uri)
    client.log_artifacts(run_id, str(folder), REPORT_DIR)
    return "#" + report_route(client.get_run(run_id).info.experiment_id, run_id)


def report_uri(tracking_uri: str, run_id: str, file: str = "report.html") -> str:
    """Where a run's report file is stored (a ``file://`` path for a local store)."""
    return client_for(tracking_uri).get_run(run_id).info.artifact_uri.rstrip("/") + f"/{REPORT_DIR}/{file}"


def read_val_predictions(tracking_uri: str, run_id: str) -> pd.DataFrame | None:
    """The run's ``evaluation/val_predictions.csv``; None when the run holds none."""
    client = client_for(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"{REPORT_DIR}/{VAL_PREDICTIONS}", tmp)
        except (MlflowException, OSError):
            return None
        return pd.read_csv(path, dtype={"id": str})


def set_model_tags(tracking_uri: str, model_id: str, tags: dict[str, str]) -> None:
    """Tags of a logged model (the temperature, for ``runs:/`` references that name no version)."""
    client_for(tracking_uri).set_logged_model_tags(model_id, tags)


def download_model_files(tracking_uri: str, reference: str, out: Path) -> Path:
    """The files of the model ``reference`` names (``models:/...``, ``runs:/RUN_ID/model``) copied
    into ``out``; returns the folder holding its ``config.json`` and ``model.safetensors``."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        with quiet_mlflow():
            location = model_location(tracking_uri, reference)
            get_artifact_repository(location, tracking_uri=tracking_uri).download_artifacts("", str(out))
    except (MlflowException, OSError) as err:
        raise ModelNotFoundError(f"cannot load model {reference!r}: {first_line(err, 200)}", MODEL_WORDS) from None
    return out / "artifacts"


def source_run(tracking_uri: str, reference: str) -> str:
    """The run a model reference comes from: a registered version's run, or the run of ``runs:/``."""
    version = resolve_version(tracking_uri, reference)
    if version is not None:
        return str(version.run_id or "")
    scheme, _, rest = reference.partition(":/")
    return rest.strip("/").partition("/")[0] if scheme == "runs" else ""


def stored_temperature(tracking_uri: str, reference: str) -> float | None:
    """The temperature stored with a model: its registered version's tag, else its logged model's; None
    when its evaluation has not run (or the reference is a folder)."""
    version = resolve_version(tracking_uri, reference)
    if version is not None and TEMPERATURE in version.tags:
        return float(version.tags[TEMPERATURE])
    scheme, _, rest = reference.partition(":/")
    if version is not None:
        model_id = version.tags.get(MODEL_ID)
    else:  # models:/<model id> names the logged model itself
        model_id = rest.strip("/") if scheme == "models" and "/" not in rest.strip("/") else None
    run_id = source_run(tracking_uri, reference)
    client = client_for(tracking_uri)
    try:
        if model_id is None and run_id:
            outputs = client.get_run(run_id).outputs
            ids = [o.model_id for o in (outputs.model_outputs if outputs else [])]
            model_id = ids[0] if ids else None
        tags: dict[str, Any] = client.get_logged_model(model_id).tags if model_id else {}
    except MlflowException:
        return None
    return float(tags[TEMPERATURE]) if TEMPERATURE in tags else None


__all__ = [
    "EVALUATED",
    "EVALUATED_ON",
    "EVALUATED_VERSION",
    "KIND_ENSEMBLE",
    "KIND_EVALUATION",
    "KIND_SOUP",
    "MEMBERS",
    "PROMOTED",
    "PROMOTION_REASON",
    "PROMOTION_RULE",
    "REPORT_DIR",
    "REPORT_LINK",
    "TEMPERATURE",
    "VAL_PREDICTIONS",
    "download_model_files",
    "log_report",
    "read_val_predictions",
    "report_route",
    "report_uri",
    "run_facts",
    "set_model_tags",
    "source_run",
    "stored_temperature",
]
