"""Finding and loading a kept or registered model in a named MLflow store.

MLflow's own resolution of ``models:/`` and ``runs:/`` URIs goes through its
process-wide tracking and registry URIs in places; looking the folder up here,
in the store a command was given, keeps one process able to read several stores.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tl_bench.errors import ModelNotFoundError, first_line
from tl_bench.redact import redact
from tl_bench.tracking.logged_models import client_for, filter_value, logged_models, quiet_mlflow
from tl_bench.tracking.names import MODEL_NAME

MODEL_WORDS = "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a folder written by `tl-bench export`"


PLAIN_FILES = ("config.json", "model.safetensors")  # under artifacts/ of a logged model; export puts them on top


def download_model(tracking_uri: str, model_id: str, out: Path, *, what: str | None = None) -> Path:
    """The logged model's folder copied to ``out`` (absent or empty), with its ``config.json`` and
    ``model.safetensors`` also at the top, beside ``MLmodel``.

    ModelNotFoundError (``what`` names the model in it) before anything is written when the model's
    files are gone from the store; a copy that fails halfway leaves ``out`` as it found it."""
    model = client_for(tracking_uri).get_logged_model(model_id)
    repo = get_artifact_repository(model.artifact_location, tracking_uri=tracking_uri)
    missing = [name for name in ("MLmodel", *(f"artifacts/{n}" for n in PLAIN_FILES)) if not _stored(repo, name)]
    if missing:
        raise ModelNotFoundError(
            f"{what or f'logged model {model_id}'} has no files in the store ({', '.join(missing)} missing "
            f"from {redact(model.artifact_location)})",
            "a kept model whose files are in the store (`tl-bench doctor SPEC --repair` forgets the others)")
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        repo.download_artifacts("", str(out))
        for name in PLAIN_FILES:
            shutil.copyfile(out / "artifacts" / name, out / name)
    except BaseException:
        _empty(out, remove=not existed)
        raise
    return out


def _stored(repo: Any, path: str) -> bool:
    """Whether the artifact repository holds the file ``path`` (a folder it cannot list holds none)."""
    folder = path.rpartition("/")[0] or None
    try:
        return any(item.path == path and not item.is_dir for item in repo.list_artifacts(folder))
    except (MlflowException, OSError):
        return False


def _empty(folder: Path, *, remove: bool) -> None:
    """What a failed copy wrote to ``folder`` removed (and ``folder`` itself with ``remove``)."""
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir() if folder.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


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
        # ``model`` is the run's model whatever it is called (``<study>-<dataset>-t<trial>``; older stores: model)
        query = f"source_run_id = {filter_value('run id', run_id)}"
        if name and name != MODEL_NAME:
            query += f" AND name = {filter_value('model name', name)}"
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
