"""A study's settings in the leaderboard's order, read from its Optuna trials.

The study side never reads the report side: it groups its own complete trials
into settings (same parameters but the seed) and orders them with
``tl_bench.ranking``, the rule the leaderboard applies to the same trials'
MLflow runs. The kept models, the summary's best trial and the champion all
come from here, so the registered model is the leaderboard's first row. A
setting with a seed that missed the study's constraints is left out, as the
leaderboard ranks it after every feasible one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import TrialState

from tl_bench.ranking import rank_trials
from tl_bench.study.feasibility import is_feasible
from tl_bench.study.storage import THREADS_ATTR

SEED_PARAM = "seed"


@dataclass(frozen=True)
class RankedSetting:
    """One setting of a study, with the figures its rank comes from."""

    trial: int  # its representative: the seed with the best validation accuracy
    val_acc: float  # mean over distinct seeds
    val_acc_lcb: float
    n_seeds: int


def _setting(trial: optuna.trial.FrozenTrial) -> str:
    # the thread count is part of a setting, as on the leaderboard: results repeat at one count only
    key = {k: v for k, v in trial.params.items() if k != SEED_PARAM}
    return json.dumps([key, trial.user_attrs.get(THREADS_ATTR)], sort_keys=True, default=str)


def ranked_settings(study: optuna.Study) -> list[RankedSetting]:
    """The study's settings that completed a trial, first one first (the primary objective is validation accuracy)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    missed = {_setting(t) for t in complete if not is_feasible(t)}
    trials = pd.DataFrame([{"setting": _setting(t), "seed": str(t.params.get(SEED_PARAM)),
                            "val_acc": float(t.values[0]), "trial": t.number} for t in complete])
    ranked = rank_trials(trials)  # the bound pools the spread of every setting, as the leaderboard's does
    ranked = ranked[~ranked["setting"].isin(missed)]
    return [RankedSetting(int(r.trial), float(r.val_acc), float(r.val_acc_lcb), int(r.n_seeds))
            for r in ranked.itertuples()]


def setting_of(study: optuna.Study, number: int, ranked: list[RankedSetting]) -> RankedSetting | None:
    """The ranked setting trial ``number`` is a seed of (the ranking's own setting key); None when it has none."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        return None
    key = _setting(trials[number])
    return next((s for s in ranked if s.trial in trials and _setting(trials[s.trial]) == key), None)


def setting_seeds(study: optuna.Study, number: int) -> list[optuna.trial.FrozenTrial]:
    """The complete trials of trial ``number``'s setting, one per distinct seed (its best), by seed."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    if number not in trials:
        return []
    key = _setting(trials[number])
    best: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in trials.values():
        seed = str(trial.params.get(SEED_PARAM))
        if _setting(trial) == key and (seed not in best or trial.values[0] > best[seed].values[0]):
            best[seed] = trial
    return [best[seed] for seed in sorted(best, key=lambda s: (len(s), s))]


def top_trials(study: optuna.Study, k: int) -> list[int]:
    """Representative trials of the first ``k`` settings."""
    return [s.trial for s in ranked_settings(study)[:k]]


__all__ = ["RankedSetting", "SEED_PARAM", "ranked_settings", "setting_of", "setting_seeds", "top_trials"]
