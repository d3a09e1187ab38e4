"""The one rule that ranks settings, wherever they are ranked: the leaderboard, the kept models, the champion.

A *setting* is one study's combination with all its other searched and fixed
parameters; its trials differ only in the training seed. Its score is
``val_acc_lcb``, a one-sided 95 % lower confidence bound on its mean validation
accuracy over distinct seeds, ``val_acc - 1.645 * s / sqrt(n_seeds)``, where
``s`` is the seed-to-seed standard deviation of validation accuracy pooled over
the settings of the same *pool* that finished at least two seeds (0 when none
did, and then the bound is the mean). A pool is one study on one dataset split:
what a row's bound is computed from never depends on which other rows a reader
asked to see, and never mixes splits whose accuracies do not compare. Settings
are ordered by the bound, then more seeds, then the higher mean, then the
earlier trial; the setting's representative trial is its seed with the best
validation accuracy (the earlier trial on ties).

This module reads no store: the leaderboard feeds it MLflow runs, the study
feeds it Optuna trials, and both get the same answer for the same trials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LCB_Z = 1.645  # standard normal quantile of a one-sided 95 % bound
POOL = ("study", "dataset", "split")  # the trials whose seed spread a setting's bound borrows
# How settings are ordered: (column, ascending), first key first.
SETTING_ORDER: tuple[tuple[str, bool], ...] = (
    ("val_acc_lcb", False), ("n_seeds", False), ("val_acc", False), ("trial", True),
)


def order_settings(settings: pd.DataFrame, first: tuple[tuple[str, bool], ...] = ()) -> pd.DataFrame:
    """``settings`` sorted by ``first`` keys, then ``SETTING_ORDER`` (missing scores last)."""
    keys = [*first, *SETTING_ORDER]
    return settings.sort_values([k for k, _ in keys], ascending=[a for _, a in keys], na_position="last",
                                kind="stable")


def pooled_seed_std(settings: pd.DataFrame) -> pd.Series:
    """Per row, the seed-to-seed standard deviation of validation accuracy pooled over the row's
    pool (``POOL`` columns present in ``settings``): sqrt(sum((n_i - 1) * s_i^2) / sum(n_i - 1))
    over its settings with n_i >= 2 seeds; 0 where none has two."""
    by = [c for c in POOL if c in settings.columns]
    keys = settings[by].astype(str).agg("\x1f".join, axis=1) if by else pd.Series("", index=settings.index)
    repeated = (settings["n_seeds"] >= 2) & settings["val_acc_std"].notna()
    dof = (settings["n_seeds"] - 1).where(repeated, 0.0)
    ss = (dof * settings["val_acc_std"].fillna(0.0) ** 2)
    total_dof = dof.groupby(keys).transform("sum")
    total_ss = ss.groupby(keys).transform("sum")
    return np.sqrt(total_ss / total_dof.where(total_dof > 0)).fillna(0.0).astype("float64")


def add_lcb(settings: pd.DataFrame) -> pd.DataFrame:
    """``settings`` (``val_acc`` mean, ``n_seeds``, ``val_acc_std``, the ``POOL`` columns) with ``val_acc_lcb``."""
    settings = settings.copy()
    settings["val_acc_lcb"] = settings["val_acc"] - LCB_Z * pooled_seed_std(settings) / np.sqrt(settings["n_seeds"])
    return settings


def rank_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Finished trials -> settings in rank order.

    ``trials`` has one row per finished trial: ``setting`` (any hashable key), ``seed``,
    ``val_acc`` and ``trial`` (its number), plus ``POOL`` columns when several pools are mixed.
    Returns one row per setting: its pool columns, ``val_acc`` (mean over distinct seeds),
    ``n_seeds``, ``val_acc_std``, ``val_acc_lcb`` and ``trial``, its representative trial.
    """
    if trials.empty:
        return pd.DataFrame(columns=["setting", "val_acc", "n_seeds", "val_acc_std", "val_acc_lcb", "trial"])
    pool = [c for c in POOL if c in trials.columns]
    per_seed = trials.groupby(["setting", "seed"], sort=False, dropna=False)["val_acc"].mean()
    grouped = per_seed.groupby(level="setting", sort=False)
    best = trials.sort_values(["val_acc", "trial"], ascending=[False, True], kind="stable").drop_duplicates("setting")
    settings = best.set_index("setting")[[*pool, "trial"]].join(pd.DataFrame({
        "val_acc": grouped.mean(), "n_seeds": grouped.size(), "val_acc_std": grouped.std(),
    }))
    return order_settings(add_lcb(settings.reset_index())).reset_index(drop=True)


__all__ = ["LCB_Z", "POOL", "SETTING_ORDER", "add_lcb", "order_settings", "pooled_seed_std", "rank_trials"]
