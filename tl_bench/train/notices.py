"""Lines said once per process: news about caches that every trial of a study would repeat."""

from __future__ import annotations

import logging
import threading

_said: set[str] = set()
_lock = threading.Lock()


def warn_once(log: logging.Logger, line: str) -> None:
    """``log.warning(line)`` the first time this process meets ``line``; nothing after."""
    with _lock:
        if line in _said:
            return
        _said.add(line)
    log.warning(line)


__all__ = ["warn_once"]
