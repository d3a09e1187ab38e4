"""A study's trials with each per-backbone parameter as one: ``freeze_depth@test_resnet`` -> ``freeze_depth``.

Optuna samples a parameter whose choices depend on another choice (the
freeze depths and weights a backbone offers) under one name per condition, so
its plots and optuna-dashboard show ``freeze_depth@test_resnet`` and
``freeze_depth@test_vit`` apart, and leave them out of the parallel-coordinate
plot, which draws only parameters every trial has. A copy of the trials in an
in-memory study, each such parameter under its own name with the union of its
choices, draws and weighs them as one parameter, as the leaderboard reads them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution

CONDITION = "@"  # ``<name>@<backbone>``: a parameter sampled for one backbone only


def _merged(distributions: Iterable[tuple[str, BaseDistribution]]) -> dict[str, CategoricalDistribution]:
    """``<name>`` -> the union of the choices of its ``<name>@*`` categorical distributions, first seen first."""
    choices: dict[str, list[object]] = {}
    for name, dist in distributions:
        base = name.split(CONDITION, 1)[0]
        if CONDITION in name and isinstance(dist, CategoricalDistribution):
            seen = choices.setdefault(base, [])
            seen.extend(c for c in dist.choices if c not in seen)
    return {base: CategoricalDistribution(values) for base, values in choices.items()}  # type: ignore[arg-type]


def merged_study(study: optuna.Study) -> optuna.Study:
    """``study`` itself when no parameter is per backbone, else an in-memory copy of its finished, pruned and
    failed trials with each ``<name>@<backbone>`` parameter as ``<name>`` (a name the study also samples
    unconditioned is left as it is)."""
    trials = study.get_trials(deepcopy=False)
    merged = _merged((n, d) for t in trials for n, d in t.distributions.items())
    plain = {n for t in trials for n in t.distributions if CONDITION not in n}
    merged = {k: v for k, v in merged.items() if k not in plain}
    if not merged:
        return study
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        copy = optuna.create_study(directions=study.directions, study_name=study.study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if study.metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            copy.set_metric_names(study.metric_names)
    for trial in trials:
        if trial.state == optuna.trial.TrialState.RUNNING or trial.state == optuna.trial.TrialState.WAITING:
            continue
        params, dists = {}, {}
        for name, value in trial.params.items():
            base = name.split(CONDITION, 1)[0]
            key = base if base in merged else name
            params[key] = value
            dists[key] = merged[base] if base in merged else trial.distributions[name]
        copy.add_trial(optuna.trial.create_trial(
            state=trial.state, params=params, distributions=dists,
            values=trial.values if trial.state == optuna.trial.TrialState.COMPLETE else None,
            intermediate_values=trial.intermediate_values, user_attrs=trial.user_attrs))
    return copy


__all__ = ["CONDITION", "merged_study"]
