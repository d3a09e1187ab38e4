"""MLflow's system metrics (CPU, memory, disk, network with ``psutil``; GPU with ``nvidia-ml-py``) for a trial run.

Off by default on a CPU machine, where sampling competes with training for the
same cores; on by default when CUDA is available. MLflow's own switch decides
when it is set: ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true`` or ``false``.
Sampling every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (MLflow's
default 10), logged as ``system/*`` metrics of the run (its "System metrics" tab).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

SWITCH = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
_log = logging.getLogger(__name__)


def system_metrics_wanted() -> bool:
    """MLflow's switch when set, else whether this process can use CUDA."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if value in ("true", "1", "false", "0"):
        return value in ("true", "1")
    import torch

    return torch.cuda.is_available()


@contextmanager
def system_metrics(tracking_uri: str | None, run_id: str, *, enabled: bool | None = None) -> Iterator[None]:
    """Sample system metrics into ``run_id`` while the block runs (``enabled`` None: ``system_metrics_wanted``)."""
    if not run_id or not (system_metrics_wanted() if enabled is None else enabled):
        yield
        return
    try:  # psutil is what MLflow samples with: the extra ``tl-bench[system-metrics]``
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per trial
        monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri)
    except ImportError as err:
        _log.warning("no system metrics: %s (pip install 'tl-bench[system-metrics]')", err)
        monitor = None
    if monitor is None:
        yield
        return
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


__all__ = ["SWITCH", "system_metrics", "system_metrics_wanted"]
