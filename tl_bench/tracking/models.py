"""Kept trials' models in MLflow, and the Model Registry: log, list, delete, register, resolve.

A kept trial's model is an MLflow LoggedModel named ``model`` whose source run
is the trial run (so ``runs:/<run_id>/model`` and ``models:/<model_id>`` both
name it, and the MLflow UI lists it in the run's Models column). It is a pyfunc
model from code (``model_code.py``) whose artifacts are the network as an MLflow
PyTorch model in ``torch.export`` form, ``config.json`` and ``model.safetensors``.

Everything goes through ``MlflowClient`` with an explicit tracking URI, which
is also the registry URI: a study's winners are registered where it was recorded.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import pandas as pd
import torch
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema, TensorSpec
from mlflow.types.schema import Array
from torch import nn

from tl_bench.tracking.names import CHAMPION, MODEL_ID, MODEL_NAME, OPTUNA_STUDY, TRIAL

CODE_FILE = Path(__file__).with_name("model_code.py")
IMAGE_COLUMN = "image"  # the input column model_code.py reads
# What loading the model needs (for environment managers other than `--env-manager local`).
_PACKAGES = ("mlflow", "torch", "torchvision", "pillow", "numpy", "pandas")
_PAGE = 1000


def client_for(tracking_uri: str) -> MlflowClient:
    """A client whose registry is the tracking store itself."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _requirements() -> list[str]:
    found = []
    for name in _PACKAGES:
        try:
            found.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            found.append(name)
    return found


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # MLflow reports every check of a save at INFO; a study's progress display is the place for news.
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def image_signature() -> ModelSignature:
    """Encoded image files in (binary, base64 in JSON), top class and every probability out."""
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]),
        outputs=Schema([ColSpec(DataType.string, "label"), ColSpec(DataType.double, "probability"),
                        ColSpec(Array(DataType.double), "probabilities")]),
    )


def log_trial_model(
    tracking_uri: str,
    experiment_id: str,
    run_id: str,
    *,
    network: nn.Module,
    bundle_dir: Path,
    pixels: np.ndarray,
    encoded: list[bytes],
    tags: dict[str, str],
    params: dict[str, str],
) -> str:
    """Log the model of a trial run; returns its model id.

    ``network`` maps uint8 images (N, 3, S, S) to probabilities; ``pixels``
    (two images or more, so the batch size stays free) traces it, and
    ``encoded`` (the same images as files) is the pyfunc's input example.
    ``bundle_dir`` holds ``config.json`` and ``model.safetensors``.
    """
    client = client_for(tracking_uri)
    model = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id, tags=tags,
                                       params=params, model_type="image-classifier")
    try:
        with tempfile.TemporaryDirectory() as tmp, _quiet():
            network_dir, local = Path(tmp) / "network", Path(tmp) / "model"
            with torch.no_grad():
                classes = int(network.eval()(torch.from_numpy(pixels[:2])).shape[1])
            size = int(pixels.shape[-1])
            tensor_signature = ModelSignature(
                inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, 3, size, size))]),
                outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes))]),
            )
            mlflow.pytorch.save_model(network.eval(), str(network_dir), serialization_format="pt2",
                                      signature=tensor_signature, input_example=pixels,
                                      pip_requirements=_requirements())
            mlflow.pyfunc.save_model(
                str(local),
                python_model=str(CODE_FILE),
                artifacts={"network": str(network_dir), "config": str(bundle_dir / "config.json"),
                           "weights": str(bundle_dir / "model.safetensors")},
                signature=image_signature(),
                input_example=pd.DataFrame({IMAGE_COLUMN: encoded}),
                pip_requirements=_requirements(),
                mlflow_model=Model(artifact_path=model.artifact_location, run_id=run_id,
                                   model_uuid=model.model_id, model_id=model.model_id),
            )
            client.log_model_artifacts(model.model_id, str(local))
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    except BaseException:
        delete_model(tracking_uri, model.model_id)  # no half-written model is left to count as kept
        raise
    return model.model_id


def _logged_models(client: MlflowClient, experiment_id: str, filter_string: str) -> Iterator[LoggedModel]:
    token = None
    while True:
        page = client.search_logged_models([experiment_id], filter_string=filter_string, max_results=_PAGE,
                                           page_token=token)
        yield from page
        token = page.token
        if not token:
            return


@dataclass(frozen=True)
class KeptModel:
    trial: int
    model_id: str
    run_id: str


def kept_models(tracking_uri: str, experiment_id: str, optuna_study: str) -> dict[int, KeptModel]:
    """The trials of an Optuna study that hold a (finished, not deleted) model, by trial number."""
    if "'" in optuna_study:
        raise ValueError(f"study name {optuna_study!r} cannot be searched for")
    found: dict[int, KeptModel] = {}
    client = client_for(tracking_uri)
    query = f"name = '{MODEL_NAME}' AND tags.`{OPTUNA_STUDY}` = '{optuna_study}'"
    for model in _logged_models(client, experiment_id, query):
        number = model.tags.get(TRIAL, "")
        if model.status == LoggedModelStatus.READY and number.isdigit():
            found.setdefault(int(number), KeptModel(int(number), model.model_id, model.source_run_id or ""))
    return found


def delete_model(tracking_uri: str, model_id: str) -> None:
    """Delete a logged model's files, then the model (MLflow itself only marks it deleted)."""
    client = client_for(tracking_uri)
    model = client.get_logged_model(model_id)
    get_artifact_repository(model.artifact_location, tracking_uri=tracking_uri).delete_artifacts()
    client.delete_logged_model(model_id)


def registered_versions(tracking_uri: str, *, name: str | None = None, run_id: str | None = None) -> list[ModelVersion]:
    """Every version of a registered model, or every version made from one run."""
    clause = f"name = '{name}'" if name is not None else f"run_id = '{run_id}'"
    client = client_for(tracking_uri)
    out: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(clause, max_results=_PAGE, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def champion(tracking_uri: str, name: str) -> ModelVersion | None:
    """The version the ``champion`` alias points to; None when the model or the alias does not exist."""
    try:
        return client_for(tracking_uri).get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    created: bool  # a new version was made (else the model was already registered)
    moved: bool  # the champion alias moved to this version


def register_champion(
    tracking_uri: str, name: str, *, model_id: str, run_id: str, tags: dict[str, str], description: str = ""
) -> Registered:
    """Register the model as a version of ``name`` unless a version already holds it, and point
    ``champion`` at that version."""
    client = client_for(tracking_uri)
    try:
        client.create_registered_model(name, description=description or None)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    same = [v for v in registered_versions(tracking_uri, name=name) if v.tags.get(MODEL_ID) == model_id]
    if same:
        target, created = min(same, key=lambda v: int(v.version)), False
    else:
        # The source is the model's own folder: a models:/<id> source would be looked up in the
        # process-wide default store by MLflow's registry, not in this one.
        location = client.get_logged_model(model_id).artifact_location
        target = client.create_model_version(name, source=location, run_id=run_id,
                                             tags={**tags, MODEL_ID: model_id}, model_id=model_id)
        created = True
    current = champion(tracking_uri, name)
    moved = current is None or current.version != target.version
    if moved:
        client.set_registered_model_alias(name, CHAMPION, target.version)
    return Registered(name, str(target.version), created, moved)


def version_problem(tracking_uri: str, version: ModelVersion) -> str | None:
    """Why a registered version cannot be loaded (its run or its files are gone), or None."""
    client = client_for(tracking_uri)
    if version.run_id:
        try:
            run = client.get_run(version.run_id)
        except MlflowException:
            return f"its run {version.run_id} does not exist"
        if run.info.lifecycle_stage == "deleted":
            return f"its run {version.run_id} is deleted"
    model_id = version.tags.get(MODEL_ID) or getattr(version, "model_id", None)
    try:
        location = client.get_logged_model(model_id).artifact_location if model_id else version.source
        names = [f.path for f in get_artifact_repository(location, tracking_uri=tracking_uri).list_artifacts()]
    except (MlflowException, OSError) as err:
        return f"its model cannot be read ({str(err).splitlines()[0][:120] if str(err) else type(err).__name__})"
    return None if "MLmodel" in names else "its model files are gone"


def delete_version(tracking_uri: str, name: str, version: str) -> None:
    client_for(tracking_uri).delete_model_version(name, version)


__all__ = [
    "CODE_FILE",
    "IMAGE_COLUMN",
    "KeptModel",
    "Registered",
    "champion",
    "client_for",
    "delete_model",
    "delete_version",
    "image_signature",
    "kept_models",
    "log_trial_model",
    "register_champion",
    "registered_versions",
    "version_problem",
]
