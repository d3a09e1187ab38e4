"""Reading what the studies wrote to MLflow: one row per run, every page of results.

Everything here goes through ``MlflowClient`` with an explicit tracking URI
(never the process-global one), so the same code reads a local SQLite store,
a folder store or a remote tracking server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tl_bench.errors import StorageError
from tl_bench.tracking import DATASET, KIND, N_STAGES, STATE, STUDY, TRIAL

DEFAULT_STORE = Path("studies") / "runs" / "mlflow.db"
PAGE_SIZE = 10_000  # MLflow's own page size for pandas searches; servers accept up to 50,000
IMPORTANCE_PREFIX = "importance."
# Tags copied into the frame, under these column names.
TAG_COLUMNS = {STUDY: "study", DATASET: "dataset", TRIAL: "trial", STATE: "state",
               N_STAGES: "n_stages_tag", MLFLOW_PARENT_RUN_ID: "parent_run_id"}


def resolve_tracking_uri(tracking_uri: str | None = None, *, spec: str | Path | None = None) -> str:
    """The store to read: an explicit URI, else the spec's, else ``$MLFLOW_TRACKING_URI``,
    else ``studies/runs/mlflow.db`` when that file exists."""
    if tracking_uri:
        return tracking_uri
    if spec is not None:
        from tl_bench.spec import load_spec

        return load_spec(spec).tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if DEFAULT_STORE.is_file():
        return f"sqlite:///{DEFAULT_STORE.absolute()}"
    raise StorageError(
        f"no MLflow store given and no {DEFAULT_STORE} here; "
        "accepted: --tracking-uri URL, --spec PATH or the MLFLOW_TRACKING_URI environment variable"
    )


def local_store_path(tracking_uri: str) -> Path | None:
    """The file or folder behind a local URI (``sqlite:///``, ``file:``, a plain path); None for servers."""
    if tracking_uri.startswith("sqlite:///"):
        rest = tracking_uri[len("sqlite:///"):]
        return None if rest.startswith(":memory:") else Path(rest)
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if not parsed.scheme or len(parsed.scheme) == 1:  # a bare path or a drive letter
        return Path(tracking_uri)
    return None


def open_store(tracking_uri: str) -> MlflowClient:
    """A client on an existing store; a missing local store is an error, not a new empty one."""
    path = local_store_path(tracking_uri)
    if path is not None and not path.exists():
        raise StorageError(
            f"no MLflow store at {path}; accepted: the tracking URI of a store that studies wrote "
            "(run `tl-bench run SPEC` first, or pass --tracking-uri)"
        )
    return MlflowClient(tracking_uri=tracking_uri)


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


def search_tlb_runs(
    tracking_uri: str,
    *,
    kind: str = "trial",
    study: str | None = None,
    dataset: str | None = None,
    finished_only: bool = True,
) -> list[Run]:
    """Every active run of ``kind`` (``trial`` or ``study``), all pages, filtered in the store."""
    try:
        client = open_store(tracking_uri)
        experiment_ids = _experiment_ids(client, study)
        if not experiment_ids:
            return []
        clauses = [f"tags.`{KIND}` = '{kind}'"]
        if finished_only:
            clauses.append("attributes.status = 'FINISHED'")
        if dataset is not None and _quoted(dataset):
            clauses.append(f"tags.`{DATASET}` = {_quoted(dataset)}")
        runs: list[Run] = []
        token = None
        while True:
            page = client.search_runs(experiment_ids, " and ".join(clauses), ViewType.ACTIVE_ONLY,
                                      PAGE_SIZE, None, token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs
    except StorageError:
        raise
    except Exception as err:  # connection and database errors come in many types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise StorageError(f"cannot read MLflow runs from {tracking_uri!r}: {first}") from err


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: ``run_id``, ``status``, ``run_name``, the ``tlb.*`` tags (see TAG_COLUMNS),
    every param as ``params.<name>`` (strings) and every metric as ``metrics.<name>``."""
    infos = [run.info for run in runs]
    data = [run.data for run in runs]
    base: dict[str, list[Any]] = {"run_id": [i.run_id for i in infos], "status": [i.status for i in infos],
                                  "run_name": [i.run_name for i in infos]}
    tags = [d.tags for d in data]
    for key, column in TAG_COLUMNS.items():
        base[column] = [t.get(key) for t in tags]
    # pandas builds frames from lists of dicts in one pass; missing keys become NaN.
    params = pd.DataFrame.from_records([d.params for d in data]).add_prefix("params.")
    metrics = pd.DataFrame.from_records([d.metrics for d in data]).add_prefix("metrics.")
    return pd.concat([pd.DataFrame(base), params, metrics], axis=1)


def trial_runs(
    tracking_uri: str,
    *,
    study: str | None = None,
    dataset: str | None = None,
    include_unfinished: bool = False,
) -> pd.DataFrame:
    """Trial runs as a frame (see ``runs_frame``); finished ones unless ``include_unfinished``."""
    runs = search_tlb_runs(tracking_uri, kind="trial", study=study, dataset=dataset,
                           finished_only=not include_unfinished)
    frame = runs_frame(runs)
    if study is not None:
        frame = frame[frame["study"] == study]
    if dataset is not None:
        frame = frame[frame["dataset"] == dataset]
    return frame.reset_index(drop=True)


def importance_frame(tracking_uri: str, *, study: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """Optuna parameter importances logged on parent runs as ``importance.<param>`` metrics.

    Columns ``study, dataset, param, importance``; when a dataset study has several
    parent runs (resumed studies), the latest one that logged importances wins.
    """
    runs = search_tlb_runs(tracking_uri, kind="study", study=study, dataset=dataset, finished_only=False)
    rows = []
    seen: set[tuple[str | None, str | None]] = set()
    for run in sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True):
        key = (run.data.tags.get(STUDY), run.data.tags.get(DATASET))
        values = {k[len(IMPORTANCE_PREFIX):]: v for k, v in run.data.metrics.items() if k.startswith(IMPORTANCE_PREFIX)}
        if key in seen or not values:
            continue
        if (study is not None and key[0] != study) or (dataset is not None and key[1] != dataset):
            continue
        seen.add(key)
        rows.extend({"study": key[0], "dataset": key[1], "param": p, "importance": v} for p, v in values.items())
    frame = pd.DataFrame(rows, columns=["study", "dataset", "param", "importance"])
    return frame.sort_values(["study", "dataset", "importance"], ascending=[True, True, False], ignore_index=True)


__all__ = [
    "DEFAULT_STORE",
    "IMPORTANCE_PREFIX",
    "importance_frame",
    "local_store_path",
    "open_store",
    "resolve_tracking_uri",
    "runs_frame",
    "search_tlb_runs",
    "trial_runs",
]
