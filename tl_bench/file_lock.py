"""An exclusive lock on a file that says who holds it, and a bounded wait for it.

Used where two processes must not do one thing at once: create a store's schema
(``store.lock`` beside an SQLite store) or pretrain one checkpoint. The holder
writes its host, pid and the time it took the lock into the lock file, so a
process that has to wait can say for whom; the file is emptied when the lock is
let go. ``fcntl.flock`` is dropped by the kernel when its holder dies, so a
killed process never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tl_bench.errors import TLBenchError
from tl_bench.faults import LOCK_WAIT_S

POLL_S = 0.2


class LockHeldError(TLBenchError):
    """A lock another process held for longer than this one was willing to wait."""


def holder(path: Path) -> str:
    """Who holds the lock file ``path``, as written by its holder: "pid P on host H since T"."""
    try:
        found = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        found = {}
    if not isinstance(found, dict) or "pid" not in found:
        return "another process (it has not said which yet)"
    since = found.get("since", "?")
    return f"pid {found['pid']} on host {found.get('host', '?')} since {since}"


@contextmanager
def locked(
    path: Path, *, wait_s: float | None, what: str, todo: str, on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the lock file ``path`` for the block.

    When another process holds it, ``on_wait`` is told who once, and the wait lasts at most ``wait_s``
    seconds (None: for as long as it takes); then ``LockHeldError``, one line: "``what`` is held by
    ...; gave up after waiting N s", followed by ``todo``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # never truncated here: the holder's note stays readable
    try:
        _acquire(fd, path, wait_s=wait_s, what=what, todo=todo, on_wait=on_wait)
        note = {"host": socket.gethostname(), "pid": os.getpid(), "since": datetime.now().isoformat(timespec="seconds")}
        _write_note(fd, json.dumps(note).encode())
        try:
            yield
        finally:
            _write_note(fd, b"")
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def creating(path: Path, store: str) -> Iterator[None]:
    """Hold the creation lock of the SQLite store ``path`` (``PATH.lock`` beside it) for the block.

    A library creates (and migrates) an SQLite store's schema the first time a process opens it; two
    processes doing that at once leave one with a traceback (MLflow: ``duplicate column name: step``).
    The second now waits, up to ``LOCK_WAIT_S``, and finds the schema made.
    """
    path = Path(path)
    with locked(path.with_name(path.name + ".lock"), wait_s=LOCK_WAIT_S, what=f"the creation of {store} {str(path)!r}",
                todo="stop the process that holds it, then run the same command again"):
        yield


def _write_note(fd: int, note: bytes) -> None:
    # The note only informs whoever waits: a full disk fails the store's own write, with its own line.
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
    except OSError:
        pass


def _acquire(fd: int, path: Path, *, wait_s: float | None, what: str, todo: str,
             on_wait: Callable[[str], None] | None) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if on_wait is not None:
        on_wait(holder(path))
    if wait_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockHeldError(f"{what} is held by {holder(path)} (lock file {path}); gave up after "
                                    f"waiting {wait_s:g} s", todo, lead="; ") from None
            time.sleep(POLL_S)


__all__ = ["LockHeldError", "creating", "holder", "locked"]
