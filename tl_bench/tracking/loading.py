"""Finding and loading a kept or registered model in a named MLflow store.

MLflow's own resolution of ``models:/`` and ``runs:/`` URIs goes through its
process-wide tracking and registry URIs in places; looking the folder up here,
in the store a command was given, keeps one process able to read several stores.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tl_bench.errors import ModelNotFoundError, first_line
from tl_bench.tracking.logged_models import MODEL_NAME, client_for, filter_value, logged_models, quiet_mlflow

MODEL_WORDS = "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a folder written by `tl-bench export`"


def download_model(tracking_uri: str, model_id: str, out: Path) -> Path:
    """The logged model's folder copied to ``out``, with its ``config.json`` and ``model.safetensors``
    also at the top, beside ``MLmodel``."""
    model = client_for(tracking_uri).get_logged_model(model_id)
    out.mkdir(parents=True, exist_ok=True)
    get_artifact_repository(model.artifact_location, tracking_uri=tracking_uri).download_artifacts("", str(out))
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(out / "artifacts" / name, out / name)
    return out


def model_location(tracking_uri: str, reference: str) -> str:
    """The artifact folder behind ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/MODEL_ID``
    or ``runs:/RUN_ID/NAME``, looked up in this store."""
    client = client_for(tracking_uri)
    scheme, _, rest = reference.partition(":/")
    rest = rest.strip("/")
    if scheme == "runs":
        run_id, _, path = rest.partition("/")
        name, _, inner = path.partition("/")
        experiment = client.get_run(run_id).info.experiment_id
        query = f"name = {filter_value('model name', name or MODEL_NAME)}"
        for model in logged_models(client, [experiment], query):
            if model.source_run_id == run_id:
                return model.artifact_location.rstrip("/") + (f"/{inner}" if inner else "")
        return client.get_run(run_id).info.artifact_uri.rstrip("/") + f"/{path}"
    if scheme != "models" or not rest:
        raise ModelNotFoundError(f"{reference!r} names no model", MODEL_WORDS)
    if "@" in rest:
        name, _, alias = rest.partition("@")
        source = client.get_model_version_by_alias(name, alias).source
    elif "/" in rest:
        name, _, number = rest.partition("/")
        source = client.get_model_version(name, number).source
    else:
        source = client.get_logged_model(rest).artifact_location
    return model_location(tracking_uri, source) if source.startswith(("models:/", "runs:/")) else source


def shown_uri(uri: str) -> str:
    """A URI fit to print: any user name and password taken out."""
    parsed = urlsplit(uri)
    if parsed.username is None and parsed.password is None:
        return uri
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    return urlunsplit(parsed._replace(netloc=f"***@{netloc}"))


def load_model(reference: str, tracking_uri: str | None = None) -> mlflow.pyfunc.PyFuncModel:
    """The pyfunc model at ``reference`` (``models:/...``, ``runs:/...`` or a folder);
    ModelNotFoundError with one line when it cannot be loaded."""
    try:
        if Path(reference).is_dir():
            with quiet_mlflow():
                return mlflow.pyfunc.load_model(reference)
        if tracking_uri is None:
            raise ModelNotFoundError(f"no MLflow store to find {reference!r} in", "--tracking-uri or --spec")
        with tempfile.TemporaryDirectory() as tmp, quiet_mlflow():
            location = model_location(tracking_uri, reference)
            get_artifact_repository(location, tracking_uri=tracking_uri).download_artifacts("", tmp)
            return mlflow.pyfunc.load_model(tmp)  # read whole into memory: the folder may go
    except (MlflowException, OSError) as err:
        where = f" in {shown_uri(tracking_uri)}" if tracking_uri and not Path(reference).exists() else ""
        raise ModelNotFoundError(
            f"cannot load model {reference!r}{where}: {first_line(err, 200)}", MODEL_WORDS
        ) from None


__all__ = ["MODEL_WORDS", "download_model", "load_model", "model_location", "shown_uri"]
