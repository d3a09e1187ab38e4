"""Trial runs -> settings: every seed counted, finished seeds averaged, a fair score to compare.

A *setting* is one study's combination (dataset, backbone, weights, freeze_depth,
neck, head) with all its other searched and fixed parameters: its runs differ only
in ``seed`` (or in how they ran, ``RUN_ONLY_PARAMS``). Within a setting:

- an Optuna trial counts once, however many runs repairs left for it;
- a seed counts once, however many trials ran it: finished if any of its runs
  finished, else running, pruned or failed, in that order;
- metrics are averaged per seed first, then over the finished seeds, so a
  repeated seed does not weigh twice;
- ``n_seeds_started``, ``n_seeds_pruned`` and ``n_seeds_failed`` say what was
  left out of the average, and ``seeds_complete`` is False when anything was.

``val_acc_lcb`` compares settings with unequal seed counts fairly; its rule, and the pool of
trials it borrows its seed spread from (one study on one dataset split), are ``tl_bench.ranking``'s,
the same rule that chooses the kept models and the champion.
"""

from __future__ import annotations

import pandas as pd

from tl_bench.config import split_label
from tl_bench.errors import OutputError, did_you_mean
from tl_bench.ranking import add_lcb
from tl_bench.report.columns import COMBINATION, MEAN_COLUMNS, RUN_ONLY_PARAMS

# Seed outcomes, best first: a seed takes the best outcome among its runs.
SEED_STATES = ("finished", "running", "pruned", "failed")
# The tlb.state tag of runs that did not finish: interrupted trials count as failed.
_STATE_OUTCOME = {"PRUNED": "pruned", "RUNNING": "running"}


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    return runs[name] if name in runs.columns else pd.Series(None, index=runs.index, dtype=object)


def trial_table(runs: pd.DataFrame, metric: str = "val_acc") -> pd.DataFrame:
    """One typed row per trial run: the leaderboard's columns, ``setting`` (runs that differ only
    in seed share it), ``outcome`` (one of ``SEED_STATES``) and the ranking ``metric``."""
    metrics = {c[len("metrics."):] for c in runs.columns if c.startswith("metrics.")}
    if len(runs) and metric not in metrics and metric != "val_acc_lcb":
        known = sorted(metrics | {"val_acc_lcb"})
        raise OutputError(f"no trial run has the metric {metric!r}{did_you_mean(metric, known)}", ", ".join(known))
    out = pd.DataFrame({"run_id": runs["run_id"], "study": runs["study"], "state": runs["state"]})
    out["dataset"] = runs["dataset"].fillna(_column(runs, "params.dataset"))
    sizes = zip(_column(runs, "params.train_size"), _column(runs, "params.val_size"), _column(runs, "params.split_seed"))
    out["split"] = [split_label(*values) for values in sizes]
    for name in ("backbone", "weights", "freeze_depth", "neck", "head"):
        out[name] = _column(runs, "params." + name)
    if "params.adaptation" in runs.columns:  # runs from before adaptation methods trained no method
        runs = runs.assign(**{"params.adaptation": runs["params.adaptation"].fillna("full")})
    out["adaptation"] = _column(runs, "params.adaptation").fillna("full")
    for name in ("lr", "batch_size", "epochs", "seed"):
        out[name] = pd.to_numeric(_column(runs, "params." + name), errors="coerce")
    out["trial"] = pd.to_numeric(runs["trial"], errors="coerce")
    out["feasible"] = _column(runs, "feasible_tag").astype(str) != "false"  # untagged: no constraints
    out["pruned_epoch"] = pd.to_numeric(_column(runs, "pruned_epoch"), errors="coerce")
    out["pruned_reason"] = _column(runs, "pruned_reason")
    n_stages = pd.to_numeric(_column(runs, "metrics.n_stages"), errors="coerce")
    out["n_stages"] = n_stages.fillna(pd.to_numeric(runs["n_stages_tag"], errors="coerce"))
    for name in dict.fromkeys((*MEAN_COLUMNS, metric)):
        if name != "val_acc_lcb" and (name not in out.columns or name in MEAN_COLUMNS):
            out[name] = pd.to_numeric(_column(runs, "metrics." + name), errors="coerce")
    status = _column(runs, "status").astype(str)
    outcome = out["state"].map(_STATE_OUTCOME).fillna("failed")
    out["outcome"] = outcome.where(status != "FINISHED", "finished").where(status != "RUNNING", "running")
    params = [c for c in runs.columns if c.startswith("params.") and c[len("params."):] not in RUN_ONLY_PARAMS]
    # torch's thread count changes how sums are split, so results repeat at one count only: part of the setting
    out["threads"] = _column(runs, "threads")
    keys = pd.concat([out[["study", *COMBINATION, "threads"]], runs[params]], axis=1).astype(str)
    # dropna=False: runs missing a param are grouped by the values they have, never dropped.
    out["setting"] = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup() if len(keys) else []
    return out


def outcome_text(state: object, pruned_epoch: object = None) -> str:
    """How a trial that has no result ended, in words: ``pruned at epoch 2``, ``failed``, ``running``."""
    if state == "PRUNED":
        return f"pruned at epoch {int(pruned_epoch)}" if pd.notna(pruned_epoch) else "pruned"
    return "running" if state == "RUNNING" else "failed"


def settings_table(trials: pd.DataFrame, metric: str = "val_acc", *, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per setting that finished a seed (any seed with ``include_unfinished``).

    Averaged columns (``MEAN_COLUMNS`` and ``metric``) are means over distinct seeds; ``run_id``,
    ``trial``, ``seed`` and the other columns come from the seed run with the best validation
    accuracy. Adds ``n_seeds``, ``n_seeds_started``, ``n_seeds_pruned``, ``n_seeds_failed``,
    ``seeds_complete``, ``test_acc_std``, ``val_acc_std`` and ``val_acc_lcb``.
    """
    used = trials if include_unfinished else trials[trials["outcome"] == "finished"]
    if used.empty:  # nothing finished yet (or no runs at all): no row
        added = ["n_seeds", "n_seeds_started", "n_seeds_pruned", "n_seeds_failed", "seeds_complete",
                 "test_acc_std", "val_acc_std", "val_acc_lcb"]
        return pd.DataFrame(columns=[*trials.columns, *added]).astype({c: "float64" for c in added})
    trials = _one_run_per_trial(trials)
    # A run without a seed param is a seed of its own.
    seed_id = trials["seed"].map(lambda s: f"seed={s:g}", na_action="ignore").fillna("run=" + trials["run_id"])
    trials = trials.assign(_seed=seed_id)
    counts = _seed_counts(trials)
    used = trials if include_unfinished else trials[trials["outcome"] == "finished"]
    averaged = list(dict.fromkeys(c for c in (*MEAN_COLUMNS, metric) if c in used.columns))
    per_seed = used.groupby(["setting", "_seed"], sort=False)[averaged].mean()
    grouped = per_seed.groupby(level="setting", sort=False)
    means = grouped.mean()
    order = ["val_acc", "trial", "run_id"]
    representative = used.sort_values(order, ascending=[False, True, True], na_position="last", kind="stable")
    representative = representative.drop_duplicates("setting").set_index("setting")
    settings = representative.drop(columns=[*averaged, "_seed"]).join(means)
    settings["n_seeds"] = grouped.size()
    settings = settings.join(counts)
    settings["seeds_complete"] = settings["n_seeds"] == settings["n_seeds_started"]
    settings["test_acc_std"] = grouped["test_acc"].std()
    # a setting meets the constraints only when every seed it finished does
    settings["feasible"] = used.groupby("setting", sort=False)["feasible"].all()
    settings["val_acc_std"] = grouped["val_acc"].std()
    return add_lcb(settings).reset_index()


def _one_run_per_trial(trials: pd.DataFrame) -> pd.DataFrame:
    # Repairs may leave a second run for one Optuna trial (marked as a duplicate): keep its best.
    rank = trials["outcome"].map({s: i for i, s in enumerate(SEED_STATES)})
    ordered = trials.assign(_rank=rank).sort_values(["_rank", "run_id"], kind="stable")
    numbered = ordered[ordered["trial"].notna()].drop_duplicates(["study", "dataset", "trial"])
    return pd.concat([numbered, ordered[ordered["trial"].isna()]]).drop(columns="_rank").sort_index()


def _seed_counts(trials: pd.DataFrame) -> pd.DataFrame:
    rank = trials["outcome"].map({s: i for i, s in enumerate(SEED_STATES)})
    best = rank.groupby([trials["setting"], trials["_seed"]], sort=False).min()
    outcome = best.map(dict(enumerate(SEED_STATES)))
    by_setting = outcome.groupby(level="setting", sort=False)
    return pd.DataFrame({
        "n_seeds_started": by_setting.size(),
        "n_seeds_pruned": by_setting.agg(lambda s: int((s == "pruned").sum())),
        "n_seeds_failed": by_setting.agg(lambda s: int((s == "failed").sum())),
    })


__all__ = ["SEED_STATES", "outcome_text", "settings_table", "trial_table"]
