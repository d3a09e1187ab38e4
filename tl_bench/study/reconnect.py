"""An Optuna storage on a database server that rides out a restart of the server.

A PostgreSQL (or MySQL) server that restarts drops every connection and refuses
new ones for a moment. The engine's ``pool_pre_ping`` replaces a dropped
connection, but a storage operation that runs while the server is down fails,
and Optuna reports it as "invalid data in the commit, e.g. exceeding max
length". Here each operation is tried again after ``RECONNECT_WAITS_S`` when the
database error says the connection was lost or refused (or the transaction was
rolled back by a deadlock); when the server is still gone after the last wait,
the one line says so (``StorageError``), with the database's own words.

Trials and studies are created only once: ``create_new_trial`` and
``create_new_study`` are tried again only when the connection could not be made,
never after one was lost mid-statement, when the row may already be stored.
SQLite needs none of this: it has no connection to lose, and its locks are
waited for (``LOCK_WAIT_S``).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
from sqlalchemy import exc as sa_exc

from tl_bench.errors import StorageError, first_line
from tl_bench.redact import redact

T = TypeVar("T")
RECONNECT_WAITS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # tried again after each: about 15 s for a server to come back
_CREATING = ("create_new_study", "create_new_trial", "_create_new_trial")
# Every RDBStorage method that reads or writes the database, public or called by Optuna's trial cache.
_RETRIED = (
    *_CREATING, "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies", "set_trial_param", "_set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
    "_get_trials", "get_best_trial", "_get_best_trial_id", "record_heartbeat", "_get_stale_trial_ids",
)
_depth = threading.local()  # operations of this thread in progress: only the outermost one waits and retries


def lost_connection(err: BaseException) -> sa_exc.DBAPIError | None:
    """The database error in ``err``'s chain that says the connection was lost or could not be made
    (SQLAlchemy's ``OperationalError`` / ``InterfaceError``, or any error it marked a disconnect)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lost = isinstance(current, (sa_exc.OperationalError, sa_exc.InterfaceError))
        if isinstance(current, sa_exc.DBAPIError) and (lost or current.connection_invalidated):
            return current
        current = current.__cause__ or current.__context__
    return None


def with_reconnect(call: Callable[[], T], url: str, *, creates: bool = False) -> T:
    """``call()``, tried again after each of ``RECONNECT_WAITS_S`` while the database cannot be reached.

    ``creates``: the call inserts a row that must not be inserted twice, so it is tried again only when
    the connection could not be made. Calls nested in one already retrying run once.
    """
    if getattr(_depth, "n", 0):
        return call()
    _depth.n = 1
    try:
        for wait in (*RECONNECT_WAITS_S, None):
            try:
                return call()
            except Exception as err:
                lost = lost_connection(err)
                if lost is None:
                    raise
                if creates and lost.connection_invalidated:
                    raise _gone(url, lost, "lost its database connection in the middle of a write") from err
                if wait is None:
                    raise _gone(url, lost, "lost its database connection and could not reconnect within "
                                           f"{sum(RECONNECT_WAITS_S):g} s") from err
                time.sleep(wait)
        raise AssertionError("unreachable")
    finally:
        _depth.n = 0


def retried(storage: Any, call: Callable[[], T]) -> T:
    """``call()`` (a write in a session of ``storage``), with ``with_reconnect`` when ``storage`` rides out
    restarts, else once."""
    if isinstance(storage, ReconnectingStorage):
        return with_reconnect(call, storage.url)
    return call()


def _gone(url: str, lost: sa_exc.DBAPIError, what: str) -> StorageError:
    said = first_line(lost.orig) if lost.orig is not None else first_line(lost)
    return StorageError(
        f"Optuna storage {redact(url)!r} {what} ({type(lost.orig or lost).__name__}: {said})",
        "start the database again (or correct the URL), then run the same command again: it repairs what was "
        "left unfinished", lead="; ")


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def retried(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        return with_reconnect(lambda: method(self, *args, **kwargs), self.url, creates=name in _CREATING)

    return retried


class ReconnectingStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` whose every database operation rides out a restart of the server (see the module)."""


for _name in _RETRIED:
    setattr(ReconnectingStorage, _name, _retrying(_name))

__all__ = ["RECONNECT_WAITS_S", "ReconnectingStorage", "lost_connection", "retried", "with_reconnect"]
