"""Reading what the studies wrote: every page of runs, as MLflow runs or as one frame.

Everything here goes through ``MlflowClient`` with an explicit tracking URI
(never the process-global one), so the same code reads a local SQLite store,
a database or a remote tracking server.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from tl_bench.errors import StorageError
from tl_bench.faults import store_error
from tl_bench.tracking.names import (
    DATASET,
    FEASIBLE,
    KIND,
    KIND_TRIAL,
    N_STAGES,
    PARENT_RUN_ID,
    PRUNED_EPOCH,
    PRUNED_REASON,
    STATE,
    STUDY,
    THREADS,
    TRIAL,
)
from tl_bench.tracking.store import check_tracking_uri, require_store, store_label

PAGE_SIZE = 10_000  # MLflow's own page size for pandas searches; servers accept up to 50,000
# Tags copied into the frame, under these column names.
TAG_COLUMNS = {STUDY: "study", DATASET: "dataset", TRIAL: "trial", STATE: "state",
               N_STAGES: "n_stages_tag", PARENT_RUN_ID: "parent_run_id", PRUNED_EPOCH: "pruned_epoch",
               PRUNED_REASON: "pruned_reason", THREADS: "threads", FEASIBLE: "feasible_tag"}


def search_runs(client: MlflowClient, experiment_ids: Sequence[str], filter_string: str = "") -> Iterator[Run]:
    """Every active run of the experiments that matches ``filter_string``, page by page."""
    token = None
    while True:
        page = client.search_runs(list(experiment_ids), filter_string, ViewType.ACTIVE_ONLY, PAGE_SIZE, None, token)
        yield from page
        token = page.token
        if not token:
            return


def experiment_exists(tracking_uri: str, name: str) -> bool:
    """Whether the store has an experiment called ``name``; a server that does not answer fails in seconds."""
    check_tracking_uri(tracking_uri)
    try:
        return MlflowClient(tracking_uri).get_experiment_by_name(name) is not None
    except Exception as err:  # connection and database errors come in many types
        raise store_error(err, store_label(tracking_uri), tracking_uri) from err


def run_exists(tracking_uri: str, run_id: str) -> bool:
    """Whether the store holds run ``run_id`` (a study recorded in another store does not)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return False
        raise store_error(err, store_label(tracking_uri), tracking_uri) from err
    except Exception as err:
        raise store_error(err, store_label(tracking_uri), tracking_uri) from err
    return True


def _experiment_ids(client: MlflowClient, study: str | None) -> list[str]:
    if study is not None:  # one experiment per study spec, named after it
        found = client.get_experiment_by_name(study)
        return [found.experiment_id] if found is not None and found.lifecycle_stage == "active" else []
    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids


def _quoted(value: str) -> str | None:
    # MLflow's filter grammar has no escape for quotes: such values are filtered in pandas instead.
    return None if "'" in value or '"' in value else f"'{value}'"


def read_runs(
    tracking_uri: str,
    *,
    kind: str = KIND_TRIAL,
    study: str | None = None,
    dataset: str | None = None,
    finished_only: bool = True,
) -> pd.DataFrame:
    """Every active run of ``kind`` as one frame, filtered in the store.

    One row per run: ``run_id``, ``status``, ``run_name``, ``start_time`` (ms), the ``tlb.*``
    tags (see TAG_COLUMNS), every param as ``params.<name>`` (strings) and every metric as
    ``metrics.<name>``. ``study`` and ``dataset`` narrow the search; a dataset name holding a
    quote cannot be filtered by MLflow, so callers that need it exact filter the frame too.
    """
    try:
        require_store(tracking_uri)
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_ids = _experiment_ids(client, study)
        clauses = [f"tags.`{KIND}` = '{kind}'"]
        if finished_only:
            clauses.append("attributes.status = 'FINISHED'")
        if dataset is not None and _quoted(dataset):
            clauses.append(f"tags.`{DATASET}` = {_quoted(dataset)}")
        runs = list(search_runs(client, experiment_ids, " and ".join(clauses))) if experiment_ids else []
    except StorageError:
        raise
    except Exception as err:  # connection and database errors come in many types
        raise store_error(err, store_label(tracking_uri), tracking_uri) from err
    return _frame(runs)


def _frame(runs: list[Run]) -> pd.DataFrame:
    infos = [run.info for run in runs]
    data = [run.data for run in runs]
    base: dict[str, list[Any]] = {"run_id": [i.run_id for i in infos], "status": [i.status for i in infos],
                                  "run_name": [i.run_name for i in infos], "start_time": [i.start_time for i in infos]}
    tags = [d.tags for d in data]
    for key, column in TAG_COLUMNS.items():
        base[column] = [t.get(key) for t in tags]
    # pandas builds frames from lists of dicts in one pass; missing keys become NaN.
    params = pd.DataFrame.from_records([d.params for d in data]).add_prefix("params.")
    metrics = pd.DataFrame.from_records([d.metrics for d in data]).add_prefix("metrics.")
    return pd.concat([pd.DataFrame(base), params, metrics], axis=1)


# ``Run`` is MLflow's record of a run (``.info``, ``.data.tags`` / ``.params`` / ``.metrics``): what ``search_runs`` yields.
def trial_record(tracking_uri: str, run_id: str) -> dict[str, Any]:
    """What a finished trial run holds: its ``trial_config.json`` (``config``, ``history``) and ``metrics``."""
    import json
    import tempfile
    from pathlib import Path

    require_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "trial_config.json", tmp)
        record = json.loads(Path(path).read_text())
    record["metrics"] = dict(client.get_run(run_id).data.metrics)
    return record


__all__ = ["PAGE_SIZE", "TAG_COLUMNS", "Run", "experiment_exists", "read_runs", "run_exists", "search_runs",
           "trial_record"]
