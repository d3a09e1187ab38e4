"""How long MLflow's SQLite store waits for a lock another process holds: ``LOCK_WAIT_S``, as the
Optuna storage does, instead of MLflow's own 20 s.

MLflow sets ``PRAGMA busy_timeout = 20000`` at the start of every session and
opens its store (schema checks, migrations) with SQLite's 5 s default, so a
worker or ``tl-bench doctor`` holding a write transaction for half a minute
would fail a study's write that a moment's more patience would have made.
``wait_for_locks()`` raises both to ``LOCK_WAIT_S`` for every SQLite
connection of the process. It changes SQLAlchemy process-wide, so it is called
explicitly, once, by the entry point of a command that opens a store (the
CLI), never on import.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tl_bench.faults import LOCK_WAIT_S

_BUSY_TIMEOUT = f"PRAGMA busy_timeout = {LOCK_WAIT_S * 1000}"


def _on_connect(dbapi_connection: Any, record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(_BUSY_TIMEOUT)


def _keep_wait(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
    # MLflow's session start lowers the wait again; its statement is rewritten to set LOCK_WAIT_S instead.
    if conn.dialect.name == "sqlite" and statement.lstrip().lower().startswith("pragma busy_timeout"):
        statement = _BUSY_TIMEOUT + ";"
    return statement, parameters


def wait_for_locks() -> None:
    """Every SQLite connection of this process, MLflow's sessions included, waits ``LOCK_WAIT_S`` for a
    lock (idempotent)."""
    if not event.contains(Engine, "connect", _on_connect):
        event.listen(Engine, "connect", _on_connect)
        event.listen(Engine, "before_cursor_execute", _keep_wait, retval=True)


def waiting_for_locks() -> bool:
    """Whether ``wait_for_locks`` was called in this process."""
    return event.contains(Engine, "connect", _on_connect)


__all__ = ["wait_for_locks", "waiting_for_locks"]
