"""How a study's experiment opens in MLflow 3's UI: the model-training view, ranked trials, recipe columns.

MLflow 3.17's UI (``mlflow/server/js/build``) chooses between its GenAI and
model-training views from the ``workflowType`` URL parameter (``genai`` or
``machine_learning``), falling back to a browser-local choice that starts as
GenAI; the experiment tag ``mlflow.experimentKind`` records the same choice
for the experiment (its kind selector, and older UIs). A runs table layout is
shared through an experiment tag ``mlflow.sharedViewState.<key>`` holding
JSON (search facets and table state), opened with ``?viewStateShareKey=<key>``.
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

RECIPE_PARAMS = ("backbone", "weights", "freeze_depth", "neck", "head")
RECIPE_METRICS = ("val_acc", "test_acc", "train_time_s")
SORT_METRIC = "val_acc"


def column(kind: str, name: str) -> str:
    """The UI's key of a runs-table column: ``params.`backbone```, ``metrics.`val_acc```, ``attributes.`Duration```."""
    return f"{kind}.`{name}`"


RECIPE_COLUMNS = tuple([column("params", p) for p in RECIPE_PARAMS] + [column("metrics", m) for m in RECIPE_METRICS]
                       + [column("tags", "tlb.state")])


def trials_view() -> dict[str, object]:
    """The shared view state: trial runs only (no study or pretraining runs), best validation accuracy
    first, the recipe columns shown."""
    return {
        "searchFilter": f"tags.`{KIND}` = '{KIND_TRIAL}'",
        "orderByKey": column("metrics", SORT_METRIC),
        "orderByAsc": False,
        "lifecycleFilter": "Active",
        "selectedColumns": list(RECIPE_COLUMNS),
        "columnOrder": list(RECIPE_COLUMNS),
    }


def experiment_tags(description: str = "") -> dict[str, str]:
    """The experiment tags that open it in the model-training view with the trials view shared;
    ``description`` (the spec's) becomes the experiment's description when given."""
    tags = {EXPERIMENT_KIND: MODEL_TRAINING, SHARED_VIEW_PREFIX + VIEW_KEY: json.dumps(trials_view()),
            MLFLOW_EXPERIMENT_PRIMARY_METRIC_NAME: SORT_METRIC, MLFLOW_EXPERIMENT_PRIMARY_METRIC_GREATER_IS_BETTER: "true"}
    if description:
        tags[EXPERIMENT_NOTE] = description
    return tags


def experiment_path(experiment_id: str) -> str:
    """The UI route (after ``#``) of the experiment's trials view in the model-training view."""
    query = urlencode({"workflowType": WORKFLOW, "viewStateShareKey": VIEW_KEY})
    return f"/experiments/{experiment_id}/runs?{query}"


def trial_views(tracking_uri: str, study: str | None = None) -> list[tuple[str, str]]:
    """(experiment name, UI route) of each study experiment of the store that carries the trials view
    (only ``study``'s when given), in name order."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if study is not None:
        found = client.get_experiment_by_name(study)
        experiments = [found] if found is not None and found.lifecycle_stage == "active" else []
    else:
        experiments = list(client.search_experiments(view_type=ViewType.ACTIVE_ONLY,
                                                     filter_string=f"tags.`{EXPERIMENT_KIND}` = '{MODEL_TRAINING}'"))
    return sorted((e.name, experiment_path(e.experiment_id)) for e in experiments
                  if SHARED_VIEW_PREFIX + VIEW_KEY in e.tags)


def run_path(experiment_id: str, run_id: str) -> str:
    """The UI route (after ``#``) of one run's page, in the model-training view."""
    return f"/experiments/{experiment_id}/runs/{run_id}?{urlencode({'workflowType': WORKFLOW})}"


__all__ = [
    "EXPERIMENT_KIND",
    "EXPERIMENT_NOTE",
    "MODEL_TRAINING",
    "RECIPE_COLUMNS",
    "SHARED_VIEW_PREFIX",
    "VIEW_KEY",
    "WORKFLOW",
    "column",
    "experiment_path",
    "experiment_tags",
    "run_path",
    "trial_views",
    "trials_view",
]
