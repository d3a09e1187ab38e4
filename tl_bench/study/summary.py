"""The study summary written to a dataset's parent run.

Counts, the best trial, Optuna's parameter importances (as ``importance.*``
metrics, so dashboards read them from MLflow alone) and Optuna's plots as one
self-contained HTML artifact.
"""

from __future__ import annotations

import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tl_bench.tracking import Tracker

log = logging.getLogger(__name__)


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances of the primary objective; empty when Optuna cannot tell yet."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study, target=lambda t: t.values[0]))
    except (RuntimeError, ValueError) as err:
        log.info("no parameter importances: %s", err)
        return {}


def plots_html(study: optuna.Study) -> str:
    """History, importances and (multi-objective) Pareto front in one offline HTML page."""
    vis = optuna.visualization
    multi = len(study.directions) > 1
    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builders = [
            lambda: vis.plot_optimization_history(study, target=lambda t: t.values[0], target_name="val_acc"),
            lambda: vis.plot_param_importances(study, target=lambda t: t.values[0], target_name="val_acc"),
        ]
        if multi:
            builders.append(lambda: vis.plot_pareto_front(study, target_names=["val_acc", "cost"]))
        for build in builders:
            try:
                figures.append(build())
            except (RuntimeError, ValueError) as err:
                log.info("plot skipped: %s", err)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    body = "\n".join(parts) or "<p>Not enough finished trials for Optuna's plots yet.</p>"
    return f"<html><head><meta charset='utf-8'><title>{study.study_name}</title></head><body>{body}</body></html>"


def _metric_name(param: str) -> str:
    # Conditional params are named like "freeze_depth@test_vit"; MLflow names allow no "@".
    return re.sub(r"[^\w\-. :/]", ":", param)


def write_summary(study: optuna.Study, tracker: Tracker, parent_run_id: str, *, dashboard: bool = True) -> dict[str, Any]:
    """Write counts, best trial, importances, plots and the dashboard to the parent run."""
    counts = {s.name: 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    metrics: dict[str, float] = {f"n_{k.lower()}": float(v) for k, v in counts.items() if k != "WAITING"}
    tags: dict[str, str] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = max(complete, key=lambda t: (t.values[0], -t.number))
        metrics.update(best_val_acc=best.values[0], best_trial=float(best.number))
        if "test_acc" in best.user_attrs:
            metrics["best_test_acc"] = float(best.user_attrs["test_acc"])
        tags.update({"tlb.best_trial": str(best.number), "tlb.best_run_id": str(best.user_attrs.get("mlflow_run_id", ""))})
    imp = importances(study)
    metrics.update({f"importance.{_metric_name(k)}": v for k, v in imp.items()})
    tracker.log_summary(parent_run_id, metrics, tags)
    if tracker.enabled and parent_run_id:
        tracker.log_text(parent_run_id, plots_html(study), "optuna_plots.html")
        if dashboard:
            _log_dashboard(tracker, parent_run_id, study)
    return {"counts": counts, "importances": imp, **metrics}


def _log_dashboard(tracker: Tracker, parent_run_id: str, study: optuna.Study) -> None:
    from tl_bench.dashboard import render_dashboard

    spec_name, _, dataset = study.study_name.partition("/")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dashboard.html"
        render_dashboard(None, tracker.tracking_uri, study=spec_name, dataset=dataset, out=out)
        tracker.log_artifact(parent_run_id, str(out))


__all__ = ["write_summary", "importances", "plots_html"]
