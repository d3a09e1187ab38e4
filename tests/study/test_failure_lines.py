"""Failed trials: a budget of N never starts more than N when every one fails, and the terminal shows each
distinct error once, as it happens, however many trials fail with it."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from rich.console import Console

from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec
from tl_bench.study.progress import StudyProgress
from tl_bench.study.storage import ERROR_ATTR, SURPLUS

from .conftest import small_spec


def _failed(error: str) -> optuna.trial.FrozenTrial:
    return create_trial(state=TrialState.FAIL, user_attrs={ERROR_ATTR: error})


def test_each_distinct_error_is_shown_once_and_earlier_failures_not_at_all() -> None:
    study = optuna.create_study(study_name="lines")
    study.add_trial(_failed("OldError: from an earlier run"))
    buffer = io.StringIO()
    with StudyProgress(Console(file=buffer, width=200, color_system=None)) as progress:
        progress.start("digits", None, total=4)
        progress.attach("digits", study)
        for error in ("ValueError: a", "ValueError: a", SURPLUS, "OSError: b", "OldError: from an earlier run"):
            study.add_trial(_failed(error))
            progress.refresh()
        progress.finish()
    lines = [line for line in buffer.getvalue().splitlines() if " failed: " in line]
    assert lines == ["trial 1 of lines failed: ValueError: a", "trial 4 of lines failed: OSError: b",
                     "trial 5 of lines failed: OldError: from an earlier run"]


def test_quiet_shows_no_error_line() -> None:
    study = optuna.create_study(study_name="quiet")
    buffer = io.StringIO()
    with StudyProgress(Console(file=buffer, width=200), quiet=True) as progress:
        progress.start("digits", study, total=1)
        study.add_trial(_failed("ValueError: a"))
        progress.finish()
    assert "failed" not in buffer.getvalue()


@pytest.mark.parametrize("n_trials", [1, 2])
def test_a_budget_of_n_starts_n_trials_when_every_one_fails(tmp_path: Path, mlflow_db: str, n_trials: int,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # fp16 on a CPU fails every trial at once, before any training
    spec = load_spec(small_spec(tmp_path, fixed={"epochs": 1, "batch_size": 64, "precision": "fp16", "device": "cpu"},
                                budget={"n_trials": n_trials}))
    outcome = run_spec(spec, RunOptions(n_trials=n_trials, summarize=False), quiet=False)[0]
    assert outcome.counts["FAIL"] == n_trials and not outcome.counts.get("COMPLETE")
    trials = optuna.load_study(study_name=outcome.study_name, storage=spec.storage_url).trials
    assert len(trials) == n_trials
    err = capsys.readouterr().err
    assert err.count(" failed: ") == 1 and "precision fp16 needs CUDA" in err  # once, however many failed
