"""How tl-bench's MLflow client behaves, set once before MLflow is first used.

Each setting is a default the user can still override with the same
environment variable:

- no usage telemetry (a benchmark tool often runs offline);
- no "View run ... at: URL" lines: they print the tracking URL with any
  password in it, and tl-bench shows its own progress and closing hints;
- a tracking server that stops answering is reported within a bounded time:
  3 retries with 0, 4 and 8 s back-off (about 15 s for a server that refuses
  connections) and 30 s per request (about 2.5 minutes for one that accepts
  and never answers), instead of MLflow's 7 retries and 120 s (over 4 minutes);
- no progress bar per artifact file: logging a kept model moves a few small
  files, and a bar each would scroll over the study's own progress;
- MLflow's own log lines about a store error it raises are dropped: tl-bench
  reports that error itself, as one line (``tl_bench.faults``).
"""

from __future__ import annotations

import logging
import os

DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# Messages MLflow logs (with a traceback) just before raising the error tl-bench then reports.
_RAISED_ANYWAY = ("SQLAlchemy database error", "SQLAlchemy engine could not be created")


class _DropReported(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_RAISED_ANYWAY)


def apply() -> None:
    """Set the defaults (keeping any the user set) and quiet MLflow's duplicate error logs."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _DropReported) for f in logger.filters):
        logger.addFilter(_DropReported())
    if logger.level == logging.NOTSET:  # "Creating initial MLflow database tables...": not news to a user
        logger.setLevel(logging.WARNING)


__all__ = ["DEFAULTS", "apply"]
