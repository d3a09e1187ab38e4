"""Where an MLflow store is: the URI to read, the file or folder behind it, a server that answers.

A local store that does not exist is never opened by reading commands:
MLflow would create an empty one, and the user would see no runs instead of
being told the path is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from tl_bench.errors import StorageError
from tl_bench.faults import check_sqlite_path
from tl_bench.redact import redact

DEFAULT_STORE = Path("studies") / "runs" / "mlflow.db"
# Stores MLflow 3 keeps (its folder store is in maintenance mode and refuses to open by default).
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql")
ACCEPTED = ("sqlite:///PATH (e.g. runs/mlflow.db), the http(s):// URL of a running `mlflow server`, "
            "or a postgresql://, mysql:// or mssql:// database URL")


def is_server(tracking_uri: str | None) -> bool:
    """An MLflow tracking server (as opposed to a store this process opens itself)."""
    return bool(tracking_uri) and str(tracking_uri).startswith(("http://", "https://"))


def check_server(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """StorageError within seconds when nothing answers at a tracking server URL.

    MLflow retries every request for minutes; a mistyped or stopped server
    should fail the command at once. Any HTTP answer counts as reachable.
    """
    import requests

    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException as err:
        raise StorageError(
            f"MLflow tracking server {redact(tracking_uri)!r} does not answer ({type(err).__name__})",
            "the URL of a running `mlflow server`, or a sqlite:///PATH store",
        ) from None


def store_label(tracking_uri: str | None) -> str:
    """How messages name the store: "MLflow tracking server" or "MLflow store"."""
    return "MLflow tracking server" if is_server(tracking_uri) else "MLflow store"


def check_tracking_uri(tracking_uri: str, *, write: bool = False) -> None:
    """StorageError (one line) unless ``tracking_uri`` names a store MLflow 3 can use: a known scheme,
    no folder store, a server that answers, an SQLite path that can be (``write``: written) a store.

    Writes nothing: a command checks its store before it records anything.
    """
    shown = redact(tracking_uri)
    if local_store_path(tracking_uri) is not None and not tracking_uri.startswith("sqlite:"):
        raise StorageError(
            f"MLflow tracking URI {shown!r} is a folder or plain path: MLflow 3 keeps runs in a database "
            "(its folder store is in maintenance mode; `mlflow migrate-filestore` converts one)", ACCEPTED)
    scheme = tracking_uri.partition("://")[0].partition("+")[0].lower() if "://" in tracking_uri else ""
    if scheme not in SCHEMES:
        raise StorageError(f"MLflow tracking URI {shown!r} has an unknown scheme {scheme or '(none)'!r}", ACCEPTED)
    if is_server(tracking_uri):
        check_server(tracking_uri)
    path = local_store_path(tracking_uri)
    if path is not None:
        check_sqlite_path(path, "MLflow store", write=write)


def local_store_path(tracking_uri: str) -> Path | None:
    """The file or folder behind a local URI (``sqlite:///``, ``file:``, a plain path); None for servers."""
    if tracking_uri.startswith("sqlite:///"):
        rest = tracking_uri[len("sqlite:///"):]
        return None if rest.startswith(":memory:") else Path(rest)
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if not parsed.scheme or len(parsed.scheme) == 1:  # a bare path or a drive letter
        return Path(tracking_uri)
    return None


def store_missing(url: str) -> bool:
    """A local store (SQLite file or folder) that does not exist: opening it would create it."""
    path = local_store_path(url)
    return path is not None and not path.exists()


def require_store(tracking_uri: str) -> None:
    """StorageError unless ``tracking_uri`` names a store that can be read and, when local, exists."""
    check_tracking_uri(tracking_uri)
    if store_missing(tracking_uri):
        raise StorageError(
            f"no MLflow store at {local_store_path(tracking_uri)}",
            "the tracking URI of a store that studies wrote (run `tl-bench run SPEC` first, or pass --tracking-uri)",
        )


def locate_store(tracking_uri: str | None = None) -> str:
    """The store to read: ``tracking_uri`` when given, else ``$MLFLOW_TRACKING_URI``,
    else ``studies/runs/mlflow.db`` when that file exists here."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if DEFAULT_STORE.is_file():
        return f"sqlite:///{DEFAULT_STORE.absolute()}"
    raise StorageError(
        f"no MLflow store given and no {DEFAULT_STORE} here",
        "--tracking-uri URL, --spec PATH or the MLFLOW_TRACKING_URI environment variable",
    )


__all__ = [
    "ACCEPTED",
    "DEFAULT_STORE",
    "SCHEMES",
    "check_server",
    "check_tracking_uri",
    "is_server",
    "local_store_path",
    "locate_store",
    "require_store",
    "store_label",
    "store_missing",
]
