"""What a dataset study has produced, and its summary on the parent run.

Counts by state, the best trial, Optuna's parameter importances (as
``importance.*`` metrics, so dashboards read them from MLflow alone),
how well screening predicted the search (``screen.*`` metrics and a line of the
run's description, each score's tau beside the static rankers') and
Optuna's plots as one self-contained HTML artifact.
"""

from __future__ import annotations

import html
import logging
import re
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tl_bench.study.ranked import RankedSetting, ranked_settings
from tl_bench.study.screen import screen_tau, tau_line
from tl_bench.study.storage import ERROR_ATTR, RUN_ATTR
from tl_bench.tracking import (
    BEST_RUN_ID,
    BEST_RUN_LINK,
    BEST_TRIAL,
    IMPORTANCE_EVALUATOR,
    IMPORTANCE_PREFIX,
    IMPORTANCE_TRIALS,
    MIN_IMPORTANCE_TRIALS,
    RUN_NOTE,
    Tracker,
)
from tl_bench.study.merged_params import merged_study
from tl_bench.tracking.view import run_path

log = logging.getLogger(__name__)


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (every state listed, zeros included)."""
    counts = {s.name: 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def failure_reasons(study: optuna.Study) -> list[str]:
    """The distinct errors the study's failed trials were recorded with, first seen first."""
    reasons: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        reason = trial.user_attrs.get(ERROR_ATTR)
        if reason:
            reasons[str(reason)] = None
    return list(reasons)


def best_trial(study: optuna.Study, ranked: list[RankedSetting] | None = None) -> FrozenTrial | None:
    """The representative trial of the study's first setting by the leaderboard's rule (its best seed);
    ``ranked``: the study's ``ranked_settings`` when the caller has them already."""
    ranked = ranked_settings(study) if ranked is None else ranked
    if not ranked:
        return None
    return next(t for t in study.get_trials(deepcopy=False) if t.number == ranked[0].trial)


# The evaluator optuna-dashboard uses, so that both show the same importances for a study
# (Optuna's default, fANOVA, is a random forest: another seed, other numbers).
EVALUATOR_NAME = "PedAnovaImportanceEvaluator"


def _evaluator() -> optuna.importance.BaseImportanceEvaluator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.importance.PedAnovaImportanceEvaluator()


def complete_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def importance_note(n_complete: int, target: str = "val_acc") -> str:
    """The line that says what the importances rest on, or why there are none."""
    if n_complete < MIN_IMPORTANCE_TRIALS:
        return (f"No parameter importances: {n_complete} complete trials, fewer than {MIN_IMPORTANCE_TRIALS}; "
                "below that they are noise (compare settings on the leaderboard instead).")
    return (f"Importances of {target} over {n_complete} complete trials: optuna.importance.{EVALUATOR_NAME}, "
            "the evaluator optuna-dashboard uses; a parameter chosen per backbone (freeze_depth, weights) counts as one.")


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances of the primary objective, as optuna-dashboard computes them
    (PED-ANOVA, target ``values[0]``), each per-backbone parameter as one (``merged_study``); empty below
    ``MIN_IMPORTANCE_TRIALS`` complete trials or when Optuna cannot tell."""
    if complete_trials(study) < MIN_IMPORTANCE_TRIALS:
        return {}
    study = merged_study(study)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study, target=lambda t: t.values[0],
                                                                evaluator=_evaluator()))
    except (RuntimeError, ValueError) as err:
        log.info("no parameter importances: %s", err)
        return {}


def plots_html(study: optuna.Study, importance: dict[str, float], plotly_head: str | None = None) -> str:
    """Optuna's standard plots of the study in one offline HTML page: plotly.js embedded once, or
    loaded by ``plotly_head`` (the store's shared copy, ``Tracker.plotly_head``).

    History with the best value so far, intermediate values (what the pruner saw),
    parallel coordinates, slices, the contour of the two most important
    parameters, importances (``importance``, from ``importances``) and, with a cost
    objective, the Pareto front.
    """
    vis = optuna.visualization
    n_complete = complete_trials(study)
    study = merged_study(study)  # freeze_depth and weights as one parameter each, also in the parallel plot
    multi = len(study.directions) > 1
    names = study.metric_names or ["val_acc", "cost"][: len(study.directions)]
    # One objective: Optuna draws the best-so-far line itself; with two it needs a target.
    target = (lambda t: t.values[0]) if multi else None
    top_two = list(importance)[:2]
    builders: list[tuple[str, Callable[[], Any]]] = [
        ("history", lambda: vis.plot_optimization_history(study, target=target, target_name=names[0])),
        ("parallel coordinates", lambda: vis.plot_parallel_coordinate(study, target=target, target_name=names[0])),
        ("slices", lambda: vis.plot_slice(study, target=target, target_name=names[0])),
        ("importances", lambda: _importance_figure(importance, names[0])),
    ]
    if not multi:
        builders.insert(1, ("intermediate values", lambda: vis.plot_intermediate_values(study)))
    if len(top_two) == 2:
        builders.append(("contour", lambda: vis.plot_contour(study, params=top_two, target=target,
                                                             target_name=names[0])))
    if multi:
        builders.append(("Pareto front", lambda: vis.plot_pareto_front(study, target_names=names)))
    figures = []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "Param X unique value length is less than 2." per plot
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for title, build in builders:
                try:
                    figures.append(build())
                except (RuntimeError, ValueError, KeyError) as err:
                    log.info("%s plot skipped: %s", title, err)
    finally:
        optuna.logging.set_verbosity(verbosity)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0 and plotly_head is None))
             for i, fig in enumerate(figures)]
    body = "\n".join(parts) or "<p>Not enough finished trials for Optuna's plots yet.</p>"
    note = f"<p>{html.escape(importance_note(n_complete, names[0]))}</p>"
    return (f"<html><head><meta charset='utf-8'><title>{study.study_name}</title>{plotly_head or ''}</head>"
            f"<body>{note}{body}</body></html>")


def _importance_figure(importance: dict[str, float], target_name: str) -> Any:
    import plotly.graph_objects as go

    if not importance:
        raise ValueError("no importances yet")
    names = list(importance)[::-1]  # most important on top
    fig = go.Figure(go.Bar(x=[importance[n] for n in names], y=names, orientation="h"))
    fig.update_layout(title=f"Hyperparameter importances ({EVALUATOR_NAME}, {target_name})",
                      xaxis_title="importance", height=max(300, 40 * len(names)))
    return fig


def _metric_name(param: str) -> str:
    # Conditional params are named like "freeze_depth@test_vit"; MLflow names allow no "@".
    return re.sub(r"[^\w\-. :/]", ":", param)


def write_summary(study: optuna.Study, tracker: Tracker, parent_run_id: str, description: str = "") -> dict[str, Any]:
    """Write counts, best trial, importances and plots to the parent run; returns what was written.

    The best trial is linked from the parent run: a ``tlb.best_run_link`` tag and a line of the run's
    description (``description`` first), which the MLflow UI shows as a link. A screened study's
    description also gets ``tau_line``: each score's tau beside the static rankers'."""
    counts = count_states(study)
    metrics: dict[str, float] = {f"n_{k.lower()}": float(v) for k, v in counts.items() if k != "WAITING"}
    tags: dict[str, str] = {}
    lines: list[str] = []  # of the run's description, after ``description``
    ranked = ranked_settings(study)
    best = best_trial(study, ranked)
    if best is not None:
        metrics.update(best_val_acc=best.values[0], best_trial=float(best.number),
                       best_setting_val_acc=ranked[0].val_acc, best_setting_val_acc_lcb=ranked[0].val_acc_lcb,
                       best_setting_n_seeds=float(ranked[0].n_seeds))
        if "test_acc" in best.user_attrs:
            metrics["best_test_acc"] = float(best.user_attrs["test_acc"])
        run_id = str(best.user_attrs.get(RUN_ATTR, ""))
        tags.update({BEST_TRIAL: str(best.number), BEST_RUN_ID: run_id})
        if run_id and tracker.enabled:
            link = "#" + run_path(tracker.experiment_id, run_id)
            tags[BEST_RUN_LINK] = link
            lines.append(f"Best trial: [trial {best.number}]({link}), val_acc {best.values[0]:.4f}")
    screening = screen_tau(study)
    if screening:
        metrics.update(screening)
        lines.append(tau_line(screening))
    if lines:
        tags[RUN_NOTE] = "\n\n".join([description, *lines] if description else lines)
    imp = importances(study)
    metrics.update({f"{IMPORTANCE_PREFIX}{_metric_name(k)}": v for k, v in imp.items()})
    if imp:
        metrics[IMPORTANCE_TRIALS] = float(complete_trials(study))
    tags[IMPORTANCE_EVALUATOR] = EVALUATOR_NAME
    tracker.log_summary(parent_run_id, metrics, tags)
    if tracker.enabled and parent_run_id:
        tracker.log_text(parent_run_id, plots_html(study, imp, tracker.plotly_head()), "optuna_plots.html")
    return {"counts": counts, "importances": imp, **metrics}


__all__ = ["EVALUATOR_NAME", "best_trial", "count_states", "importances", "plots_html", "write_summary"]
