"""The MLflow Model Registry side of kept models: a study's winner as a version, ``champion`` on the best.

A registered version's source is its logged model's folder and its tags name
the trial, the run, the accuracies and the logged model (``tlb.model_id``),
which is how a model already registered is recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tl_bench.errors import first_line
from tl_bench.tracking.logged_models import client_for
from tl_bench.tracking.names import CHAMPION, MODEL_ID

_PAGE = 1000


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


def aliased(tracking_uri: str, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points to; None when the model or the alias does not exist."""
    try:
        return client_for(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion(tracking_uri: str, name: str) -> ModelVersion | None:
    """The version the ``champion`` alias points to; None when the model or the alias does not exist."""
    return aliased(tracking_uri, name, CHAMPION)


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    created: bool  # a new version was made (else the model was already registered)
    moved: bool  # the alias moved to this version


def register_version(
    tracking_uri: str, name: str, *, model_id: str, run_id: str, tags: dict[str, str], description: str = "",
    alias: str = CHAMPION,
) -> Registered:
    """Register the model as a version of ``name`` unless a version already holds it, and point
    ``alias`` (``champion``, or ``challenger`` for a model that has not earned it) at that version."""
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
    current = aliased(tracking_uri, name, alias)
    moved = current is None or current.version != target.version
    if moved:
        client.set_registered_model_alias(name, alias, str(target.version))
    return Registered(name, str(target.version), created, moved)


def set_champion(tracking_uri: str, name: str, version: str) -> None:
    client_for(tracking_uri).set_registered_model_alias(name, CHAMPION, version)


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
        return f"its model cannot be read ({first_line(err, 120)})"
    return None if "MLmodel" in names else "its model files are gone"


def delete_version(tracking_uri: str, name: str, version: str) -> None:
    client_for(tracking_uri).delete_model_version(name, version)


__all__ = ["Registered", "aliased", "champion", "delete_version", "register_version", "registered_versions",
           "set_champion", "version_problem"]
