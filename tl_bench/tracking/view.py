"""How a study's experiment opens in MLflow 3's UI: the model-training view, ranked trials, recipe columns, charts.

MLflow 3.17's UI (``mlflow/server/js/build``) chooses between its GenAI and
model-training views from the ``workflowType`` URL parameter (``genai`` or
``machine_learning``), else from the browser's own choice, stored by its sidebar
switch in ``localStorage["mlflow.workflowType_v1"]`` and GenAI until the user
flips it. Its own links (a run of the runs table, an experiment of the list)
carry no ``workflowType``, so only that stored choice keeps a user in the
model-training view; the experiment tag ``mlflow.experimentKind`` is shown by
the kind selector and read by older UIs, not by 3.17's navigation.
``tl-bench ui`` therefore opens each printed URL through a page of its own
(``tracking.ui_app``) that stores the choice as the switch would.

A runs-table layout is an experiment tag ``mlflow.sharedViewState.<key>``
holding JSON (search facets and table state: columns, sort, charts), opened
with ``?viewStateShareKey=<key>`` behind a "shared view" banner, or stored as
the browser's own view of the experiment (``localStorage`` key
``SAVED_VIEW_KEY``), which shows with no banner and keeps the user's changes.
Column keys are ``params.`name```, ``metrics.`name``` and ``attributes.`Name```.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from mlflow.utils.mlflow_tags import (
    MLFLOW_EXPERIMENT_PRIMARY_METRIC_GREATER_IS_BETTER,
    MLFLOW_EXPERIMENT_PRIMARY_METRIC_NAME,
)

from tl_bench.tracking.names import KIND, KIND_TRIAL

EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # shown as "Machine learning" by the UI's kind selector
WORKFLOW = "machine_learning"  # the UI's ``workflowType`` of the model-training view
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "tl-bench-trials"  # the share key of the trials view tl-bench writes
EXPERIMENT_NOTE = "mlflow.note.content"  # the experiment's description, as the UI shows and edits it

SAVED_VIEW_KEY = 'MLflowLocalStorage-1.1-ExperimentPage-["{experiment_id}"]-ReactComponentState'
WORKFLOW_KEY = "mlflow.workflowType_v1"  # the sidebar switch's stored choice (JSON string)

RECIPE_PARAMS = ("dataset", "backbone", "weights", "freeze_depth", "neck", "head")
RECIPE_METRICS = ("val_acc", "test_acc", "train_time_s", "params_total", "params_trainable", "flops_fwd_per_image",
                  "peak_mem_mb")
SORT_METRIC = "val_acc"
# Charts of the view: accuracy against cost, and against each recipe choice.
SCATTER_COSTS = ("train_time_s", "params_trainable")
SCATTER_CHOICES = ("backbone", "weights", "freeze_depth")
PARALLEL_PARAMS = ("backbone", "weights", "freeze_depth", "neck", "head", "lr")
CHARTS_SECTION = "tl-bench: accuracy against cost and recipe"
# MLflow adds a chart per metric not charted yet, in these sections: kept, folded away.
GENERATED_SECTIONS = ("Model metrics", "System metrics")


def column(kind: str, name: str) -> str:
    """The UI's key of a runs-table column: ``params.`backbone```, ``metrics.`val_acc```, ``attributes.`Duration```."""
    return f"{kind}.`{name}`"


RECIPE_COLUMNS = tuple([column("params", p) for p in RECIPE_PARAMS] + [column("metrics", m) for m in RECIPE_METRICS]
                       + [column("tags", "tlb.state")])


def _axis(name: str) -> dict[str, str]:
    return {"key": name, "type": "PARAM" if name in PARALLEL_PARAMS else "METRIC"}


def trial_charts() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(charts, sections) of the chart view: ``SORT_METRIC`` against each cost of ``SCATTER_COSTS`` and
    each choice of ``SCATTER_CHOICES``, and parallel coordinates over the recipe; MLflow's per-metric
    charts go to folded sections below."""
    section = "tlb-section-recipe"
    charts: list[dict[str, object]] = []
    for x in (*SCATTER_COSTS, *SCATTER_CHOICES):
        charts.append({"uuid": f"tlb-{SORT_METRIC}-vs-{x}", "type": "SCATTER", "xaxis": _axis(x),
                       "yaxis": _axis(SORT_METRIC), "runsCountToCompare": 1000, "metricSectionId": section,
                       "deleted": False, "isGenerated": False, "displayName": f"{SORT_METRIC} against {x}"})
    charts.append({"uuid": "tlb-parallel", "type": "PARALLEL", "selectedParams": list(PARALLEL_PARAMS),
                   "selectedMetrics": [SORT_METRIC], "showAllRuns": True, "runsCountToCompare": 1000,
                   "metricSectionId": section, "deleted": False, "isGenerated": False,
                   "displayName": "recipe -> " + SORT_METRIC})
    sections: list[dict[str, object]] = [{"uuid": section, "name": CHARTS_SECTION, "display": True,
                                          "isReordered": True, "deleted": False, "isGenerated": False}]
    sections += [{"uuid": f"tlb-section-{i}", "name": name, "display": False, "isReordered": False, "deleted": False,
                  "isGenerated": True} for i, name in enumerate(GENERATED_SECTIONS)]
    return charts, sections


def trials_view() -> dict[str, object]:
    """The view state: trial runs only (no study or pretraining runs), best validation accuracy first,
    the dataset and recipe columns shown, and the charts of ``trial_charts``."""
    charts, sections = trial_charts()
    return {
        "searchFilter": f"tags.`{KIND}` = '{KIND_TRIAL}'",
        "orderByKey": column("metrics", SORT_METRIC),
        "orderByAsc": False,
        "lifecycleFilter": "Active",
        "selectedColumns": list(RECIPE_COLUMNS),
        "columnOrder": list(RECIPE_COLUMNS),
        "runsHiddenMode": "SHOW_ALL",  # MLflow charts the first 10 runs only by default
        "compareRunCharts": charts,
        "compareRunSections": sections,
        "isAccordionReordered": True,
        "hideEmptyCharts": True,
    }


def experiment_tags(description: str = "") -> dict[str, str]:
    """The experiment tags that open it in the model-training view with the trials view shared;
    ``description`` (the spec's) becomes the experiment's description when given."""
    tags = {EXPERIMENT_KIND: MODEL_TRAINING, SHARED_VIEW_PREFIX + VIEW_KEY: json.dumps(trials_view()),
            MLFLOW_EXPERIMENT_PRIMARY_METRIC_NAME: SORT_METRIC, MLFLOW_EXPERIMENT_PRIMARY_METRIC_GREATER_IS_BETTER: "true"}
    if description:
        tags[EXPERIMENT_NOTE] = description
    return tags


def experiment_path(experiment_id: str, *, shared: bool = True) -> str:
    """The UI route (after ``#``) of the experiment's trials in the model-training view; ``shared``: with
    the view's share key, for a UI that cannot store it as the browser's own view (``tl-bench ui`` does)."""
    query = {"workflowType": WORKFLOW} | ({"viewStateShareKey": VIEW_KEY} if shared else {})
    return f"/experiments/{experiment_id}/runs?{urlencode(query)}"


def experiments_path() -> str:
    """The UI route (after ``#``) of the experiment list in the model-training view."""
    return f"/experiments?{urlencode({'workflowType': WORKFLOW})}"


def trial_views(tracking_uri: str, study: str | None = None, *, shared: bool = True) -> list[tuple[str, str]]:
    """(experiment name, UI route) of each study experiment of the store that carries the trials view
    (only ``study``'s when given), in name order; ``shared`` as for ``experiment_path``."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if study is not None:
        found = client.get_experiment_by_name(study)
        experiments = [found] if found is not None and found.lifecycle_stage == "active" else []
    else:
        experiments = list(client.search_experiments(view_type=ViewType.ACTIVE_ONLY,
                                                     filter_string=f"tags.`{EXPERIMENT_KIND}` = '{MODEL_TRAINING}'"))
    return sorted((e.name, experiment_path(e.experiment_id, shared=shared)) for e in experiments
                  if SHARED_VIEW_PREFIX + VIEW_KEY in e.tags)


def run_path(experiment_id: str, run_id: str, artifact: str = "") -> str:
    """The UI route (after ``#``) of one run's page (its ``artifact`` file when given), in the model-training view."""
    page = f"/experiments/{experiment_id}/runs/{run_id}" + (f"/artifactPath/{artifact}" if artifact else "")
    return f"{page}?{urlencode({'workflowType': WORKFLOW})}"


__all__ = [
    "EXPERIMENT_KIND",
    "EXPERIMENT_NOTE",
    "MODEL_TRAINING",
    "RECIPE_COLUMNS",
    "SAVED_VIEW_KEY",
    "SHARED_VIEW_PREFIX",
    "VIEW_KEY",
    "WORKFLOW",
    "WORKFLOW_KEY",
    "column",
    "experiment_path",
    "experiment_tags",
    "experiments_path",
    "trial_charts",
    "run_path",
    "trial_views",
    "trials_view",
]
