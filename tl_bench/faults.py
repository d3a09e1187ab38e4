"""What can go wrong with a store on a bad day, each as one line: what is wrong and what to do.

Both stores (the Optuna storage and the MLflow store) are SQLite files by
default, or a database or tracking server named by URL. A store can be locked
by another process, read-only, on a full disk, not a database at all, below a
regular file, or a server can stop answering. ``store_error`` turns any of
these, whichever library raised it and however deep it is chained, into one
``StorageError`` line; ``check_sqlite_path`` finds the path problems before
anything is written.

A store waits up to ``LOCK_WAIT_S`` for a lock another process holds, so a
write transaction held for a minute costs a wait, not a study: the Optuna
storage through its connection timeout (``tl_bench.study.storage``), MLflow's
store once the CLI has called ``tl_bench.tracking.lock_wait.wait_for_locks``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tl_bench.errors import StorageError, TLBenchError, first_line
from tl_bench.redact import redact

LOCK_WAIT_S = 120
_SQLITE_HEADER = b"SQLite format 3\x00"
_AGAIN = "then run the same command again: it repairs what was left unfinished"

# kind -> what is wrong (after the store's name), what to do, and the lead joining them.
_FAULTS: dict[str, tuple[str, str, str]] = {
    "locked": (f"stayed locked by another process for over {LOCK_WAIT_S} s",
               f"stop the process that holds it, {_AGAIN}", "; "),
    "not_writable": ("cannot be written (read-only or no permission)",
                     f"make its folder writable or name another store, {_AGAIN}", "; "),
    "disk_full": ("cannot be written: the disk is full", f"free space on it, {_AGAIN}", "; "),
    "not_a_database": ("is not an SQLite database", "an SQLite store, or a path where one can be created",
                       "; accepted: "),
    "cannot_open": ("cannot be opened", "a file path in an existing, writable folder", "; accepted: "),
    "unreachable": ("does not answer", f"start it again (or correct the URL), {_AGAIN}", "; "),
}
# Words of the messages that SQLite, SQLAlchemy, requests and MLflow's REST client use for each fault.
_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("locked", ("database is locked", "database table is locked")),
    ("not_writable", ("readonly database", "read-only file system")),
    ("disk_full", ("database or disk is full", "no space left on device", "disk quota exceeded")),
    ("not_a_database", ("file is not a database", "database disk image is malformed")),
    ("cannot_open", ("unable to open database file",)),
    ("unreachable", ("max retries exceeded", "failed with timeout exception", "connection refused",
                     "connection aborted", "remote end closed connection", "read timed out")),
)
_ERRNOS = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EROFS: "not_writable",
           errno.EACCES: "not_writable", errno.EPERM: "not_writable"}


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and every exception it was raised from or while handling, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def _found(err: BaseException) -> tuple[str, BaseException, str] | None:
    """The kind of store fault anywhere in ``err``'s chain, the exception that shows it, and a short detail."""
    import requests

    for current in _chain(err):
        if isinstance(current, OSError) and current.errno in _ERRNOS:
            return _ERRNOS[current.errno], current, current.strerror or first_line(current)
        if isinstance(current, (requests.ConnectionError, requests.Timeout)):
            return "unreachable", current, type(current).__name__
        text = str(current).lower()
        for kind, words in _WORDS:
            word = next((w for w in words if w in text), None)
            if word is not None:  # the words that matched say it; the rest is SQL, retries and hints
                return kind, current, word
    return None


def classify(err: BaseException) -> tuple[str, str] | None:
    """``(kind, detail)`` of a store fault anywhere in ``err``'s chain; None for other errors."""
    found = _found(err)
    return None if found is None else (found[0], found[2])


def store_error(err: BaseException, store: str, uri: str) -> StorageError:
    """One line for any error of ``store`` (e.g. "MLflow store") at ``uri``: a known fault says what to
    do about it; anything else says what the store answered."""
    if isinstance(err, StorageError):
        return err
    found = _found(err)
    name = f"{store} {redact(uri)!r}"
    if found is None:
        if getattr(err, "error_code", None) == "INVALID_PARAMETER_VALUE":  # MLflow refused a name or value:
            return StorageError(f"{name} refused a value: {first_line(err)}")  # the same write fails again
        return StorageError(f"{name} failed: {first_line(err)}", f"check it, {_AGAIN}", lead="; ")
    kind, current, detail = found
    if isinstance(current, OSError) and current.filename:  # a plain file (artifact, cache): name it
        name = f"file {redact(str(current.filename))!r}"
    what, todo, lead = _FAULTS[kind]
    return StorageError(f"{name} {what} ({detail})", todo, lead=lead)


@contextmanager
def faults_of(store: str, uri: str, *, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Store faults raised in the block (and errors of the types ``also``) as one StorageError line
    naming ``store``; every other error passes unchanged."""
    try:
        yield
    except TLBenchError:
        raise
    except Exception as err:
        if classify(err) is None and not isinstance(err, also):
            raise
        raise store_error(err, store, uri) from err


def check_links(folder: Path, name: str) -> None:
    """StorageError when ``folder``, or a folder above it, is a symbolic link to nothing (a ``runs`` link
    left behind by a moved disk): ``name`` (what lives there) could be neither read nor created."""
    for step in (folder, *folder.parents):
        if step.is_symlink() and not step.exists():
            raise StorageError(f"{name} cannot be created: {step} is a link to {os.readlink(step)}, which does "
                               "not exist", "a link to an existing folder, or a plain folder (or none: it is "
                               "then created)")


def check_sqlite_path(path: Path, store: str, *, write: bool = True) -> None:
    """StorageError when the SQLite file ``path`` cannot be a store: a folder on its way is a
    file, it is itself a folder or another kind of file, or (``write``) its folder is read-only."""
    path = Path(path)
    name = f"{store} {str(path)!r}"
    check_links(path.parent, name)
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise StorageError(f"{name} cannot be created: {folder} is a file, not a folder",
                           "a file path in a folder (or where folders can be created)")
    if path.is_dir():
        raise StorageError(f"{name} is a folder", "the path of an SQLite file, e.g. runs/mlflow.db")
    if path.exists():
        with open(path, "rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
        if header and header != _SQLITE_HEADER:
            what, accepted, lead = _FAULTS["not_a_database"]
            raise StorageError(f"{name} {what} (it starts with {header[:8]!r})", accepted, lead=lead)
    if not write:
        return
    # SQLite writes the file and, beside it, its journal: both the file and its folder must be writable.
    for target, which in ((path, "the file"), (folder, f"folder {folder}")):
        if target is not None and target.exists() and not os.access(target, os.W_OK):
            what, todo, lead = _FAULTS["not_writable"]
            raise StorageError(f"{name} {what}: {which} is read-only", todo, lead=lead)


__all__ = ["LOCK_WAIT_S", "check_links", "check_sqlite_path", "classify", "faults_of", "store_error"]
