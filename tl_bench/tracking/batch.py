"""Params, metrics and tags of one run in as few ``log_batch`` calls as MLflow's limits allow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from tl_bench.tracking.names import MAX_PARAM, MAX_TAG


def log_batches(
    client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, str] | None = None,
    metrics: Sequence[Metric] = (),
    tags: Mapping[str, str] | None = None,
) -> None:
    """At most 100 params, 100 tags and 1000 values in all per call; at least one call."""
    ps = [Param(k, v[:MAX_PARAM]) for k, v in (params or {}).items()]
    ts = [RunTag(k, str(v)[:MAX_TAG]) for k, v in (tags or {}).items()]
    ms = list(metrics)
    while True:
        p, ps, t, ts = ps[:100], ps[100:], ts[:100], ts[100:]
        room = 1000 - len(p) - len(t)
        m, ms = ms[:room], ms[room:]
        client.log_batch(run_id, metrics=m, params=p, tags=t)
        if not (ps or ts or ms):
            return


__all__ = ["log_batches"]
