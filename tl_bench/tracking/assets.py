"""One copy of plotly.js per MLflow store, shared by every HTML artifact tl-bench logs.

plotly.js is about 4.7 MB; embedded in each plot page, every study run would
carry two copies. Instead the store holds it once, as the artifact
``plotly-<version>.min.mjs`` of a run in the experiment ``tl-bench-assets``,
and each page loads it from the MLflow server that shows the page:

- the UI shows an HTML artifact in a sandboxed iframe whose document is a
  ``blob:`` URL carrying the server's origin, so the page finds the server
  from its own address, with no network access beyond it;
- the server sends ``.js`` files as ``text/plain`` with ``nosniff`` (a browser
  refuses to run them); ``.mjs`` is sent as ``text/javascript``, and a classic
  ``<script>`` runs it whatever its name.

Opened outside MLflow (a downloaded file), such a page says where to see it;
``tl-bench dashboard --out`` still writes self-contained files.

MLflow lists experiments newest first (its home page shows the five latest):
the assets experiment is made before a store's first study experiment
(``ensure_assets_experiment``), so that a study, never it, heads that list.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from tl_bench.tracking.names import KIND, VERSION

ASSETS_EXPERIMENT = "tl-bench-assets"
KIND_ASSETS = "assets"
ASSET = "tlb.asset"  # the file an assets run holds


def plotly_asset_name() -> str:
    import plotly

    return f"plotly-{plotly.__version__}.min.mjs"


def ensure_assets_experiment(client: MlflowClient, artifact_location: str | None = None) -> str:
    """The id of the store's assets experiment, made (or restored) when missing."""
    found = client.get_experiment_by_name(ASSETS_EXPERIMENT)
    if found is None:
        try:
            return client.create_experiment(ASSETS_EXPERIMENT, artifact_location=artifact_location,
                                            tags={"mlflow.note.content": "Files shared by tl-bench's HTML artifacts "
                                                                         "(plotly.js); nothing to browse here."})
        except Exception:  # another process created it first
            found = client.get_experiment_by_name(ASSETS_EXPERIMENT)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def shared_plotly_run(client: MlflowClient, artifact_location: str | None = None) -> str:
    """The run holding this store's copy of plotly.js, logged on first use; returns its run id."""
    import plotly.offline

    name = plotly_asset_name()
    experiment_id = ensure_assets_experiment(client, artifact_location)
    runs = client.search_runs([experiment_id], f"tags.`{ASSET}` = '{name}' and attributes.status = 'FINISHED'",
                              max_results=1, order_by=["attributes.start_time ASC"])
    if runs:
        return runs[0].info.run_id
    run = client.create_run(experiment_id, run_name=name, tags={KIND: KIND_ASSETS, ASSET: name,
                                                                VERSION: _version()})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)  # finished only once the file is complete
    return run.info.run_id


def _version() -> str:
    import tl_bench

    return tl_bench.__version__


def plotly_loader(run_id: str) -> str:
    """The ``<script>`` that loads the shared plotly.js from the MLflow server showing the page."""
    path = f"get-artifact?path={plotly_asset_name()}&run_uuid={run_id}"
    return (
        "<script>(function(){var m=/^blob:(https?:\\/\\/[^\\/]+)/.exec(location.href);"
        "if(!m){document.write('<p style=\"color:#a00\">This page draws its plots with the plotly.js "
        "of the MLflow store it was logged to: open it in the MLflow UI (tl-bench ui).</p>');return;}"
        f"document.write('<script src=\"'+m[1]+'/{path}\"><\\/script>');}})();</script>"
    )


__all__ = ["ASSETS_EXPERIMENT", "ensure_assets_experiment", "plotly_asset_name", "plotly_loader", "shared_plotly_run"]
