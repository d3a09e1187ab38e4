"""Whether artifacts can be read at all, so that a repair tells a store that is away (an unmounted share,
a folder renamed or made unreadable) from one model whose files are gone.

A model's files are proven gone only when its experiment's artifact root can be read and its own
folder is missing or holds no ``MLmodel``; a root that cannot be read proves nothing, and
``check_artifact_store`` turns it into one ``StorageError`` line instead of a deletion.
"""

from __future__ import annotations

import os

from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tl_bench.errors import StorageError, first_line
from tl_bench.redact import redact
from tl_bench.tracking.logged_models import client_for
from tl_bench.tracking.store import _local_folder

_AWAY = ("make it available again (mount it, rename it back, give read access), then run the command again; "
         "nothing was deleted while it was away")


def unreadable(location: str, tracking_uri: str, *, missing_too: bool) -> str | None:
    """Why the artifact folder ``location`` cannot be read, or None; a missing local folder counts only
    with ``missing_too`` (a store's root must be there, a model's folder may be gone)."""
    folder = _local_folder(location)
    if folder is None:  # a server or object store: listing is the only test
        try:
            get_artifact_repository(location, tracking_uri=tracking_uri).list_artifacts()
        except Exception as err:  # noqa: BLE001 - whatever the store says, it was not read
            return f"cannot be listed ({first_line(err, 160)})"
        return None
    if not folder.exists():
        return "does not exist (moved, renamed or not mounted)" if missing_too else None
    try:
        with os.scandir(folder) as entries:  # listing needs read and search permission
            next(entries, None)
    except OSError as err:
        return f"cannot be read ({err.strerror or type(err).__name__})"
    return None


def check_artifact_store(tracking_uri: str, experiment_id: str) -> None:
    """StorageError when the experiment's artifact root cannot be read (missing, not mounted, no access)."""
    location = client_for(tracking_uri).get_experiment(experiment_id).artifact_location
    problem = unreadable(location, tracking_uri, missing_too=True)
    if problem is not None:
        raise StorageError(f"MLflow artifact store {redact(location)!r} {problem}", _AWAY, lead="; ")


def check_model_folder(tracking_uri: str, location: str) -> None:
    """StorageError when a model's folder exists but cannot be read (a missing one is simply gone);
    ``location`` is the folder, or ``models:/MODEL_ID`` for a logged model's."""
    if location.startswith("models:/"):
        location = client_for(tracking_uri).get_logged_model(location.removeprefix("models:/")).artifact_location
    elif location.startswith("runs:/"):
        return  # a run's artifact path, read through the run: its store's root is what can be checked
    problem = unreadable(location, tracking_uri, missing_too=False)
    if problem is not None:
        raise StorageError(f"model folder {redact(location)!r} {problem}", _AWAY, lead="; ")


__all__ = ["check_artifact_store", "check_model_folder", "unreadable"]
