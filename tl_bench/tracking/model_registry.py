"""The MLflow Model Registry side of kept models: a study's winner as a version, ``champion`` on the best.

A registered version's source is its logged model's folder; it records its run
(``run_id``) and its logged model (``model_id``, and the tag ``tlb.model_id`` by
which a model already registered is recognised), and the logged model lists the
version back (``mlflow.modelVersions``), so the MLflow UI links them both ways.
Its tags name the trial and the accuracies, its description the setting. Which version holds
``champion`` is the promotion gate's decision (``tl_bench.champion``): a new
version is registered without moving an alias, then the gate's outcome is
written on it (``set_alias``, ``describe_version``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from tl_bench.errors import ModelNotFoundError, first_line
from tl_bench.tracking.logged_models import client_for
from tl_bench.tracking.names import CHALLENGER, CHAMPION, MODEL_ID

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
    alias: str | None = CHAMPION,
) -> Registered:
    """Register the model as a version of ``name`` unless a version already holds it, and point
    ``alias`` (``champion``, or ``challenger`` for a model that has not earned it) at that version;
    ``alias=None`` moves no alias (the promotion gate decides afterwards). A new version gets
    ``description``."""
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
                                             tags={**tags, MODEL_ID: model_id}, model_id=model_id,
                                             description=description or None)
        created = True
    _link_model(tracking_uri, model_id, name, str(target.version))
    moved = alias is not None and set_alias(tracking_uri, name, alias, str(target.version))
    return Registered(name, str(target.version), created, moved)


def _link_model(tracking_uri: str, model_id: str, name: str, version: str) -> None:
    """Record the version on its logged model (``mlflow.modelVersions``, as ``mlflow.register_model`` and an
    MLflow server do): the UI's runs table and Models tab list a model's registered versions from it."""
    client = client_for(tracking_uri)
    entry = {"name": name, "version": version}
    try:
        known = json.loads(client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    except ValueError:
        known = []
    known = known if isinstance(known, list) else []
    if entry not in known:
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*known, entry])})


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> bool:
    """Point ``alias`` at ``version``; returns whether it moved. Promoting a version to ``champion``
    takes ``challenger`` off it, so an alias never names a version for a role it no longer has."""
    current = aliased(tracking_uri, name, alias)
    if current is not None and str(current.version) == version:
        return False
    client = client_for(tracking_uri)
    client.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION:
        other = aliased(tracking_uri, name, CHALLENGER)
        if other is not None and str(other.version) == version:
            client.delete_registered_model_alias(name, CHALLENGER)
    return True


def set_champion(tracking_uri: str, name: str, version: str) -> None:
    set_alias(tracking_uri, name, CHAMPION, version)


def get_version(tracking_uri: str, name: str, version: str) -> ModelVersion:
    return client_for(tracking_uri).get_model_version(name, version)


def latest_version(tracking_uri: str, name: str) -> ModelVersion | None:
    """The version registered last; None when the model has none."""
    versions = registered_versions(tracking_uri, name=name)
    return max(versions, key=lambda v: int(v.version)) if versions else None


def describe_version(tracking_uri: str, name: str, version: str, *, tags: dict[str, str] | None = None,
                     description: str | None = None) -> None:
    """Set tags on a version and, when given, replace its description (Markdown in the MLflow UI)."""
    client = client_for(tracking_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    if description is not None:
        client.update_model_version(name, version, description=description)


VERSION_WORDS = "models:/NAME@ALIAS or models:/NAME/VERSION"


def resolve_version(tracking_uri: str, reference: str) -> ModelVersion | None:
    """The registered version ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` names; None for any
    other reference (``runs:/``, a folder, ``models:/<model id>``); ModelNotFoundError when the
    name, alias or version does not exist."""
    scheme, _, rest = reference.partition(":/")
    rest = rest.strip("/")
    if scheme != "models" or not ("@" in rest or "/" in rest):
        return None
    client = client_for(tracking_uri)
    try:
        if "@" in rest:
            name, _, alias = rest.partition("@")
            return client.get_model_version_by_alias(name, alias)
        name, _, number = rest.partition("/")
        return client.get_model_version(name, number)
    except MlflowException as err:
        raise ModelNotFoundError(f"no registered version {reference!r}: {first_line(err, 160)}", VERSION_WORDS) from None


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


__all__ = ["VERSION_WORDS", "Registered", "aliased", "champion", "delete_version", "describe_version", "get_version",
           "latest_version", "register_version", "registered_versions", "resolve_version", "set_alias", "set_champion",
           "version_problem"]
