"""``tl-bench refit``: the leaderboard's first setting retrained on train + validation, as a challenger.

The setting is the first row of the study's leaderboard on the dataset (the
rule that also chose the champion), its recipe read back from its trial run,
its epochs those the search selected. The refit is an MLflow run of kind
``refit`` nested under the study's parent run, with test accuracy per seed,
their mean and a 95 % interval; its first seed's model becomes a version of
``<study>-<dataset>`` under the alias ``challenger``. It never takes
``champion`` by itself: with validation merged into training nothing is left
to compare it on by the leaderboard's rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import tl_bench
from tl_bench.champion.description import version_description
from tl_bench.config import TrialConfig
from tl_bench.errors import OutputError
from tl_bench.report import leaderboard
from tl_bench.shell import shell_command
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.study.keep import log_model
from tl_bench.tracking import (
    CHALLENGER,
    DATASET,
    KIND,
    KIND_REFIT,
    PARENT_RUN_ID,
    STUDY,
    TRIAL,
    VERSION,
    Tracker,
    config_params,
    trial_record,
)
from tl_bench.tracking.evaluation_record import PROMOTED, PROMOTION_REASON, PROMOTION_RULE
from tl_bench.tracking.model_registry import register_version
from tl_bench.train.cache import FeatureCache
from tl_bench.train.refit import RefitResult, refit

SOURCE_RUN = "tlb.source_run"  # the trial run whose setting a refit retrained


@dataclass
class RefitOutcome:
    dataset: str
    source_run_id: str
    source_trial: int
    epochs: int
    refit: RefitResult
    run_id: str
    version: str  # the registered version holding the refit model ("" without tracking)

    def lines(self) -> list[str]:
        low, high = self.refit.interval()
        accs = ", ".join(f"{a:.4f}" for a in self.refit.test_accs)
        return [f"{self.dataset}: refit of trial {self.source_trial} ({self.epochs} epochs on train + val), "
                f"test_acc {self.refit.test_mean:.4f} (95% interval {low:.4f} to {high:.4f}) over "
                f"{len(self.refit.results)} seed(s): {accs}",
                f"registered as version {self.version} with alias {CHALLENGER} (champion unchanged)"]


def chosen_epochs(config: TrialConfig, metrics: dict[str, Any]) -> int:
    """The epochs the search ran to the selected weights: the tested epoch under ``best_val``."""
    best = int(metrics.get("best_epoch", 0) or 0)
    return best if config.select == "best_val" and best > 0 else config.epochs


def refit_dataset(spec: StudySpec, dataset: DatasetSpec, *, seeds: int = 3) -> RefitOutcome:
    """Refit the first leaderboard setting of ``spec`` on ``dataset``; see the module docstring."""
    uri = str(spec.tracking_uri)
    board = leaderboard(uri, study=spec.name, dataset=dataset.key)
    if board.empty:
        raise OutputError(f"study {spec.name!r} has no finished trial on {dataset.key!r} to refit",
                          f"a dataset with finished trials (run `{shell_command('tl-bench', 'run', spec.source_path)}` first)")
    row = board.iloc[0]
    record = trial_record(uri, str(row["run_id"]))
    config = TrialConfig.from_dict(record["config"])
    epochs = chosen_epochs(config, record["metrics"])
    start_ms = int(time.time() * 1000)
    result = refit(config, epochs=epochs, seeds=seeds, cache=FeatureCache(spec.cache_dir))
    tracker = Tracker(uri, spec.name, artifact_location=spec.artifact_location)
    parent = tracker.find_parent_run(spec.study_name(dataset)) or ""
    trial = int(row["trial"])
    low, high = result.interval()
    tags = {KIND: KIND_REFIT, STUDY: spec.name, DATASET: dataset.key, TRIAL: str(trial), SOURCE_RUN: str(row["run_id"]),
            VERSION: tl_bench.__version__, **({PARENT_RUN_ID: parent} if parent else {})}
    params = {**config_params(result.config), "refit_seeds": str(seeds), "refit_epochs": str(epochs)}
    metrics = [("test_acc", acc, step) for step, acc in enumerate(result.test_accs)]
    metrics += [("test_acc_mean", result.test_mean, 0), ("test_acc_ci95_low", low, 0), ("test_acc_ci95_high", high, 0),
                ("train_time_s", sum(r.train_time_s for r in result.results), 0)]
    run_id = tracker.record_run(run_name=f"refit-{dataset.key}-trial-{trial}", tags=tags, params=params,
                                metrics=metrics, state="COMPLETE", start_ms=start_ms, end_ms=int(time.time() * 1000))
    assert result.model is not None
    model_id = log_model(tracker, run_id, result.config, result.results[0], result.model, optuna_study=None,
                         spec_name=spec.name, dataset=dataset.key, trial=trial, extra_tags={KIND: KIND_REFIT})
    version_tags = {KIND: KIND_REFIT, TRIAL: str(trial), SOURCE_RUN: str(row["run_id"]),
                    "test_acc_mean": repr(result.test_mean), "test_acc_ci95": f"{low!r} {high!r}",
                    "refit_seeds": str(seeds), "refit_epochs": str(epochs),
                    # the gate's tags, as every version carries them: no held-out evidence can judge a refit
                    PROMOTION_RULE: spec.promote.rule, PROMOTED: "false",
                    PROMOTION_REASON: "a refit trained on the validation images the gate compares on: it stays a "
                                      "challenger (promote it by hand with the MLflow registry's alias if its "
                                      "test interval convinces you)"}
    headline = (f"**{spec.registered_model_name(dataset.key)}** refit: trial {trial}'s setting retrained on train + "
                f"validation ({seeds} seed{'' if seeds == 1 else 's'}, {epochs} epochs); test accuracy "
                f"{result.test_mean:.4f}, 95 % interval {low:.4f} to {high:.4f}. A challenger: nothing held out is "
                "left to judge it on.")
    description = version_description(headline, params, trial=trial, run_id=run_id, model_id=model_id)
    registered = register_version(uri, spec.registered_model_name(dataset.key), model_id=model_id, run_id=run_id,
                                  tags=version_tags, description=description, alias=CHALLENGER)
    return RefitOutcome(dataset.key, str(row["run_id"]), trial, epochs, result, run_id, registered.version)


__all__ = ["RefitOutcome", "SOURCE_RUN", "chosen_epochs", "refit_dataset"]
