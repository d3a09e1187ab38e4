"""Per-epoch curves of trial runs, read back for replays of a finished study.

The validation accuracy of every epoch is the run's ``epoch_val_acc`` history (``step=epoch``). The
training cost so far at each epoch is the ``epoch_elapsed_train_s`` history when a run logged one,
else the ``elapsed_train_s`` of the epochs in the run's ``trial_config.json`` (the trial's own history),
else nothing: the caller then spreads ``train_time_s`` evenly over the epochs.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mlflow.tracking import MlflowClient

from tl_bench.errors import StorageError
from tl_bench.faults import store_error
from tl_bench.tracking.store import require_store, store_label

ELAPSED = "elapsed_train_s"  # the training cost so far at an epoch, in seconds (as the trainer reports it)


def epoch_curves(tracking_uri: str, run_ids: Iterable[str]) -> dict[str, dict[str, dict[int, float]]]:
    """run id -> ``{"val_acc": {epoch: value}, "elapsed_train_s": {epoch: seconds so far}}``; the second
    is empty for a run that recorded no per-epoch cost."""
    try:
        require_store(tracking_uri)
        client = MlflowClient(tracking_uri)
        return {run_id: _curves(client, run_id) for run_id in run_ids}
    except StorageError:
        raise
    except Exception as err:  # connection and database errors come in many types
        raise store_error(err, store_label(tracking_uri), tracking_uri) from err


def _curves(client: MlflowClient, run_id: str) -> dict[str, dict[int, float]]:
    acc = {int(m.step): float(m.value) for m in client.get_metric_history(run_id, "epoch_val_acc")}
    elapsed = {int(m.step): float(m.value) for m in client.get_metric_history(run_id, "epoch_" + ELAPSED)}
    if not elapsed:
        elapsed = _history_elapsed(client, run_id)
    return {"val_acc": acc, ELAPSED: elapsed}


def _history_elapsed(client: MlflowClient, run_id: str) -> dict[int, float]:
    names = {f.path for f in client.list_artifacts(run_id)}
    if "trial_config.json" not in names:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        record = json.loads(Path(client.download_artifacts(run_id, "trial_config.json", tmp)).read_text())
    return {int(row["epoch"]): float(row[ELAPSED]) for row in record.get("history", [])
            if ELAPSED in row and "epoch" in row}


__all__ = ["ELAPSED", "epoch_curves"]
