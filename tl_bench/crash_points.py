"""Named points where a test stops ``tl-bench`` with a real signal, to prove what a crash there leaves.

``TL_BENCH_CRASH_AT=POINT`` (or ``POINT:SIGNAL``, e.g. ``summary_written:SIGINT``) makes the process
send itself SIGKILL (or the named signal) when it reaches ``POINT``; unset, a point costs one
environment lookup. The points, in the order a study ends:

- ``model_created``: a kept model's MLflow record exists (PENDING), none of its files yet;
- ``model_files_logged``: its files are written, it is not yet finalised (still PENDING);
- ``summary_claimed``: this process has claimed the study's end, nothing of it is written;
- ``summary_written``: the summary is on the parent run; the champion is not registered;
- ``version_registered``: the champion's registry version exists; no alias points to it yet.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "TL_BENCH_CRASH_AT"
POINTS = ("model_created", "model_files_logged", "summary_claimed", "summary_written", "version_registered")


def crash_point(name: str) -> None:
    """Send this process the signal ``TL_BENCH_CRASH_AT`` names when it names ``name``."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, signame = wanted.partition(":")
    if point != name:
        return
    os.kill(os.getpid(), getattr(signal, signame or "SIGKILL"))
    time.sleep(10)  # a caught signal (SIGINT, SIGTERM) is raised here, at this point


__all__ = ["ENV", "POINTS", "crash_point"]
