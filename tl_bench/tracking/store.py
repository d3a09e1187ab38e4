"""Where an MLflow store is: the URI to read, the file or folder behind it, a server that answers.

A local store that does not exist is never opened by reading commands:
MLflow would create an empty one, and the user would see no runs instead of
being told the path is wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from tl_bench.errors import StorageError
from tl_bench.faults import check_sqlite_path
from tl_bench.file_lock import creating
from tl_bench.redact import redact

DEFAULT_STORE = Path("studies") / "runs" / "mlflow.db"
STORE_FILE = "mlflow.db"
# Where a command looks without a store named: the repository layout, then a study kept beside its data
# (``tl-bench run my_study.yaml`` writes ``runs/`` next to the study file).
DEFAULT_STORES = (DEFAULT_STORE, Path("runs") / STORE_FILE)
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
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


@contextmanager
def creating_store(tracking_uri: str) -> Iterator[None]:
    """Hold an SQLite store's creation lock while the block opens it for writing (MLflow creates and
    migrates a store's schema when a process first opens it: ``file_lock.creating``). Servers and
    databases need none."""
    path = local_store_path(tracking_uri)
    if path is None or not tracking_uri.startswith("sqlite:"):
        yield
        return
    with creating(path, "MLflow store"):
        yield


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


def check_artifact_home(tracking_uri: str, experiment: str, recorded: str | None, wanted: str | None) -> None:
    """StorageError when a local SQLite store keeps ``experiment``'s artifacts in a folder outside its own
    that is not ``wanted`` (the folder this command would have made it with): the store was copied or
    moved with its study folder, and MLflow, which records absolute artifact paths, would go on writing
    into the original's (another store of the same file name sits beside those artifacts). Stores on servers,
    and folders given on purpose, pass."""
    store = local_store_path(tracking_uri) if tracking_uri.startswith("sqlite:///") else None
    found, meant = _local_folder(recorded), _local_folder(wanted)
    if store is None or found is None or meant is None:
        return
    home = store.resolve().parent
    if found == meant or found == home or home in found.parents:
        return
    # Artifacts beside another store of the same name are that store's: a copy's runs would write there.
    # (Artifacts elsewhere, such as MLflow's default ./mlruns, belong to no other store and pass.)
    beside = [folder / store.name for folder in list(found.parents)[:3]]
    if not any(other.is_file() and other.resolve() != store.resolve() for other in beside):
        return
    raise StorageError(
        f"MLflow store {redact(tracking_uri)!r} keeps the artifacts of experiment {experiment!r} in {found}, outside "
        f"its folder {home}: the study folder was copied or moved, and its runs would write into the original's "
        "artifacts", "run the study in its original folder, or give the copy a new spec name (name: in the "
        "study file) for a new study and experiment")


def _local_folder(uri: str | None) -> Path | None:
    """The resolved folder of a ``file:`` URI or a plain path; None for anything remote."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":  # percent-encoded, as Path.as_uri writes a folder with spaces
        return Path(unquote(parsed.path)).resolve()
    if not parsed.scheme or len(parsed.scheme) == 1:
        return Path(uri).resolve()
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


def store_uri(text: str) -> str:
    """A plain path to an SQLite file (``runs/mlflow.db``), or to a folder holding ``mlflow.db``, as the
    ``sqlite:///`` URI of that file; URIs and other paths unchanged (``check_tracking_uri`` judges them)."""
    if "://" in text or (":" in text and not re.match(r"^[A-Za-z]:[\\/]", text)):
        return text
    path = Path(os.path.expanduser(text))
    if path.is_dir() and (path / STORE_FILE).is_file():
        path = path / STORE_FILE
    elif not (path.suffix.lower() in _SQLITE_SUFFIXES or path.is_file()):
        return text
    return f"sqlite:///{path.absolute()}"


def locate_store(tracking_uri: str | None = None) -> str:
    """The store to read: ``tracking_uri`` when given, else ``$MLFLOW_TRACKING_URI``, else the one of
    ``studies/runs/mlflow.db`` and ``runs/mlflow.db`` that exists here. A plain path to a ``.db`` file
    or to a folder holding ``mlflow.db`` is read as that SQLite store."""
    if tracking_uri:
        return store_uri(tracking_uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return store_uri(os.environ["MLFLOW_TRACKING_URI"])
    found = [path for path in DEFAULT_STORES if path.is_file()]
    if len(found) == 1:
        return f"sqlite:///{found[0].absolute()}"
    accepted = "--tracking-uri PATH_OR_URL, --spec PATH or the MLFLOW_TRACKING_URI environment variable"
    if found:
        raise StorageError(f"no MLflow store given and two here ({' and '.join(map(str, found))})",
                           f"{accepted}, naming one of them")
    raise StorageError(f"no MLflow store given and no {' or '.join(map(str, DEFAULT_STORES))} here", accepted)


__all__ = [
    "ACCEPTED",
    "DEFAULT_STORE",
    "DEFAULT_STORES",
    "SCHEMES",
    "check_artifact_home",
    "check_server",
    "check_tracking_uri",
    "creating_store",
    "is_server",
    "local_store_path",
    "locate_store",
    "require_store",
    "store_label",
    "store_missing",
    "store_uri",
]
