"""Commands tl-bench prints for the user to paste: one line a POSIX shell reads back word for word.

A study path or store URI can hold spaces, quotes or ``$(...)``; pasted as printed, the shell would
split it or run what it holds. Every printed command goes through ``shell_command``: each word
quoted where it needs to be (``shlex.quote``), URL passwords hidden (``redact``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from os import PathLike

from tl_bench.redact import redact


def shell_command(*words: str | PathLike[str], env: Mapping[str, str] | None = None) -> str:
    """``words`` as one shell command line, after ``NAME=value`` assignments of ``env`` (values quoted,
    names as given: a quoted assignment would be run as a command)."""
    assignments = [f"{name}={shlex.quote(redact(str(value)))}" for name, value in (env or {}).items()]
    return " ".join([*assignments, shlex.join(redact(str(word)) for word in words)])


__all__ = ["shell_command"]
