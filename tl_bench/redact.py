"""Passwords in URLs never leave tl-bench: every URL it prints, logs or stores goes through ``redact``.

One rule for every kind of URL a user can give (``http://user:secret@host:5000``,
``postgresql://user:secret@host/db``, ``mysql+pymysql://...``): the password
becomes ``***``, the user, host, port and path stay, so the line still says
which store is meant. It applies to whole lines too, since MLflow and
SQLAlchemy put the URL inside their own error messages.
"""

from __future__ import annotations

import re

HIDDEN = "***"  # what SQLAlchemy's own ``render_as_string(hide_password=True)`` shows
# scheme://user:password@ -- the password runs to the last '@' before the path, so one holding '@' is hidden whole.
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/@\s:'\"]*):(?P<password>[^/\s'\"]*)@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m['head']}:{HIDDEN}@", str(text))


__all__ = ["HIDDEN", "redact"]
