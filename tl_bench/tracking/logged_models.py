"""Kept trials' models in MLflow, and the Model Registry: log, list, delete, register, resolve.

A kept trial's model is an MLflow LoggedModel named for its trial
(``<study>-<dataset>-t<trial>``, ``names.logged_model_name``) whose source run is
the trial run: ``models:/<model_id>`` and ``runs:/<run_id>/<name>`` name it,
tl-bench also reads ``runs:/<run_id>/model`` as the run's model, and the MLflow UI
lists it in the run's Models column with the registered versions made from it.
Models are found by their tags, never by name. It is a pyfunc
model from code (``model_code.py``) whose artifacts are the network as an MLflow
PyTorch model in ``torch.export`` form, ``config.json`` and ``model.safetensors``.

Everything goes through ``MlflowClient`` with an explicit tracking URI, which
is also the registry URI: a study's winners are registered where it was recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import mlflow
import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema, TensorSpec
from mlflow.types.schema import Array
from torch import nn

from tl_bench.data import decode as image_decoder
from tl_bench.crash_points import crash_point
from tl_bench.errors import StorageError
from tl_bench.tracking.names import (
    DATASET,
    KIND,
    KIND_REFIT,
    OPTUNA_STUDY,
    OPTUNA_STUDY_ID,
    STUDY,
    TRIAL,
    logged_model_name,
)

CODE_FILE = Path(__file__).with_name("model_code.py")
DECODER_FILE = Path(image_decoder.__file__)  # logged with the model: it decodes as training did
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
def quiet_mlflow() -> Iterator[None]:
    """MLflow's INFO lines held back for the block."""
    # MLflow reports every check of a save at INFO; a study's progress display is the place for news.
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def image_signature() -> ModelSignature:
    """Encoded image files in (binary, base64 in JSON); out: the top class and its probability, every
    class's probability and the class names in the same order."""
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]),
        outputs=Schema([ColSpec(DataType.string, "label"), ColSpec(DataType.double, "probability"),
                        ColSpec(Array(DataType.double), "probabilities"), ColSpec(Array(DataType.string), "classes")]),
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
    model = client.create_logged_model(experiment_id, name=logged_model_name(tags), source_run_id=run_id, tags=tags,
                                       params=params, model_type="image-classifier")
    crash_point("model_created")
    try:
        with tempfile.TemporaryDirectory() as tmp, quiet_mlflow():
            network_dir, local = Path(tmp) / "network", Path(tmp) / "model"
            card = json.loads((bundle_dir / "config.json").read_text())
            classes, size = len(card["class_names"]), int(pixels.shape[-1])
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
                artifacts={"network": str(network_dir), "decoder": str(DECODER_FILE),
                           "config": str(bundle_dir / "config.json"),
                           "weights": str(bundle_dir / "model.safetensors")},
                signature=image_signature(),
                input_example=pd.DataFrame({IMAGE_COLUMN: encoded}),
                pip_requirements=_requirements(),
                # What a caller needs to read the probabilities, without opening the artifacts.
                metadata={"class_names": card["class_names"], "preprocessing": card["preprocessing"]},
                mlflow_model=Model(artifact_path=model.artifact_location, run_id=run_id,
                                   model_uuid=model.model_id, model_id=model.model_id),
            )
            client.log_model_artifacts(model.model_id, str(local))
        crash_point("model_files_logged")
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    except BaseException:
        delete_model(tracking_uri, model.model_id)  # no half-written model is left to count as kept
        raise
    return model.model_id


ADAPTER_FILE = "adapter/adapter.safetensors"


def log_adapter(tracking_uri: str, run_id: str, state: dict[str, Any], scratch: Path) -> None:
    """Log ``state`` (``models.accounting.adapter_state``: what a task stores beside the shared
    backbone, unmerged) as the run's ``adapter/adapter.safetensors``."""
    from safetensors.torch import save_file

    path = scratch / Path(ADAPTER_FILE).name
    save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}, str(path))
    client_for(tracking_uri).log_artifact(run_id, str(path), str(Path(ADAPTER_FILE).parent))


def logged_models(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> Iterator[LoggedModel]:
    """Every logged model of the experiments that matches, all pages."""
    token = None
    while experiment_ids:
        page = client.search_logged_models(experiment_ids, filter_string=filter_string, max_results=_PAGE,
                                           page_token=token)
        yield from page
        token = page.token
        if not token:
            return


@dataclass(frozen=True)
class KeptModel:
    """A trial's logged model, as its tags describe it."""

    trial: int
    model_id: str
    run_id: str
    study: str = ""
    dataset: str = ""
    val_acc: float = math.nan
    study_id: str = ""  # the Optuna study's ``tlb.optuna_study_id`` ("" on models logged before it was tagged)

    @classmethod
    def of(cls, model: LoggedModel) -> KeptModel | None:
        number = model.tags.get(TRIAL, "")
        if model.status != LoggedModelStatus.READY or not number.isdigit():
            return None  # still being written, or failed: nothing to load
        try:
            val_acc = float(model.tags.get("val_acc", "nan"))
        except ValueError:
            val_acc = math.nan
        return cls(int(number), model.model_id, model.source_run_id or "", model.tags.get(STUDY, ""),
                   model.tags.get(DATASET, ""), val_acc, model.tags.get(OPTUNA_STUDY_ID, ""))


def filter_value(name: str, value: str) -> str:
    """``value`` quoted for an MLflow filter string; StorageError for a value no filter can hold."""
    if "'" in value:  # MLflow's filter grammar has no escape for quotes
        raise StorageError(f"{name} {value!r} cannot be searched for in MLflow", f"a {name} without quotes")
    return f"'{value}'"


def kept_models(tracking_uri: str, experiment_id: str, optuna_study: str, study_id: str = "") -> dict[int, KeptModel]:
    """The trials of an Optuna study that hold a (finished, not deleted) model, by trial number; with
    ``study_id``, not those of a namesake deleted with Optuna (models tagged with another study id)."""
    query = f"tags.`{OPTUNA_STUDY}` = {filter_value('study', optuna_study)}"
    found: dict[int, KeptModel] = {}
    for model in logged_models(client_for(tracking_uri), [experiment_id], query):
        kept = KeptModel.of(model)
        if kept is not None and not (study_id and kept.study_id and kept.study_id != study_id):
            found.setdefault(kept.trial, kept)
    return found


def find_models(tracking_uri: str, *, dataset: str, study: str | None = None) -> list[KeptModel]:
    """Every kept model of a dataset, in one study (an experiment named after it) or in all of them."""
    client = client_for(tracking_uri)
    if study is not None:
        found = client.get_experiment_by_name(study)
        ids = [found.experiment_id] if found is not None else []
    else:
        ids = [e.experiment_id for e in client.search_experiments(max_results=50_000)]
    query = f"tags.`{DATASET}` = {filter_value('dataset', dataset)}"
    # a refit's model is the registry's (alias challenger), not a trial's kept model
    kept = [KeptModel.of(model) for model in logged_models(client, ids, query) if model.tags.get(KIND) != KIND_REFIT]
    return sorted((k for k in kept if k is not None), key=lambda k: (k.study, k.trial))


def delete_model(tracking_uri: str, model_id: str) -> None:
    """Delete a logged model's files, then the model (MLflow itself only marks it deleted)."""
    client = client_for(tracking_uri)
    model = client.get_logged_model(model_id)
    get_artifact_repository(model.artifact_location, tracking_uri=tracking_uri).delete_artifacts()
    client.delete_logged_model(model_id)
    location = urlsplit(model.artifact_location)
    if location.scheme == "file":  # a local store leaves the model's emptied folder behind
        with contextlib.suppress(OSError):
            Path(url2pathname(location.path)).parent.rmdir()


def files_missing(tracking_uri: str, model_id: str) -> bool:
    """Whether a logged model's folder lost its ``MLmodel`` (removed by hand, or a half-done delete)."""
    model = client_for(tracking_uri).get_logged_model(model_id)
    try:
        names = [f.path for f in get_artifact_repository(model.artifact_location, tracking_uri=tracking_uri).list_artifacts()]
    except (MlflowException, OSError):
        return True
    return "MLmodel" not in names


def model_params(tracking_uri: str, model_id: str) -> dict[str, str]:
    """The params a logged model was logged with (its trial's TrialConfig, as ``names.config_params``)."""
    return dict(client_for(tracking_uri).get_logged_model(model_id).params)


def experiment_id(tracking_uri: str, name: str) -> str | None:
    found = client_for(tracking_uri).get_experiment_by_name(name)
    return found.experiment_id if found is not None else None


__all__ = [
    "ADAPTER_FILE",
    "CODE_FILE",
    "IMAGE_COLUMN",
    "KeptModel",
    "client_for",
    "delete_model",
    "experiment_id",
    "files_missing",
    "filter_value",
    "find_models",
    "image_signature",
    "kept_models",
    "log_adapter",
    "log_trial_model",
    "logged_models",
    "model_params",
    "quiet_mlflow",
]
