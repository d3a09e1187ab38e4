"""What a dataset study has produced, and its summary on the parent run.

Counts by state, the best trial, Optuna's parameter importances (as
``importance.*`` metrics, so dashboards read them from MLflow alone) and
Optuna's plots as one self-contained HTML artifact.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tl_bench.study.storage import RUN_ATTR
from tl_bench.tracking import Tracker

log = logging.getLogger(__name__)


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (every state listed, zeros included)."""
    counts = {s.name: 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial with the highest validation accuracy (the earliest on ties)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: (t.values[0], -t.number)) if complete else None


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


def write_summary(study: optuna.Study, tracker: Tracker, parent_run_id: str) -> dict[str, Any]:
    """Write counts, best trial, importances and plots to the parent run; returns what was written."""
    counts = count_states(study)
    metrics: dict[str, float] = {f"n_{k.lower()}": float(v) for k, v in counts.items() if k != "WAITING"}
    tags: dict[str, str] = {}
    best = best_trial(study)
    if best is not None:
        metrics.update(best_val_acc=best.values[0], best_trial=float(best.number))
        if "test_acc" in best.user_attrs:
            metrics["best_test_acc"] = float(best.user_attrs["test_acc"])
        tags.update({"tlb.best_trial": str(best.number), "tlb.best_run_id": str(best.user_attrs.get(RUN_ATTR, ""))})
    imp = importances(study)
    metrics.update({f"importance.{_metric_name(k)}": v for k, v in imp.items()})
    tracker.log_summary(parent_run_id, metrics, tags)
    if tracker.enabled and parent_run_id:
        tracker.log_text(parent_run_id, plots_html(study), "optuna_plots.html")
    return {"counts": counts, "importances": imp, **metrics}


__all__ = ["best_trial", "count_states", "importances", "plots_html", "write_summary"]
