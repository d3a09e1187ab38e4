"""The budget is one value: which trial states use it up, when it is spent, and which trial comes too late;
a trial's end is classified once."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tl_bench.errors import StorageError
from tl_bench.study.budget import Budget
from tl_bench.study.storage import ERROR_ATTR
from tl_bench.study.trial import Terminated, classify


def _study(states: list[TrialState]) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for state in states:
        trial = study.ask()
        if state == TrialState.COMPLETE:
            study.tell(trial, 0.5)
        elif state != TrialState.RUNNING:
            study.tell(trial, state=state)
    return study


def test_finished_and_running_trials_use_the_budget_failed_ones_do_not() -> None:
    study = _study([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING])
    budget = Budget(4)
    assert budget.taken(study.trials) == 3 and budget.left(study) == 1 and not budget.spent(study)
    assert Budget(3).spent(study)
    assert Budget(None).left(study) == float("inf") and not Budget(None).spent(study)
    # a study that ran to its end holds its budget of finished trials; a running one does not count there
    assert Budget(2).met_by(study.trials) and not Budget(3).met_by(study.trials)


def test_a_trial_asked_after_the_budget_was_taken_is_surplus() -> None:
    study = _study([TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL])
    budget = Budget(2)
    assert not budget.surplus(study, 1)  # numbered inside the budget: never read
    assert not budget.surplus(study, 1)
    assert budget.surplus(study, 3)  # trials 0 (complete) and 1 (running) came first
    assert not Budget(3).surplus(study, 3) and not Budget(None).surplus(study, 99)


@pytest.mark.parametrize(("err", "state", "run_state", "reraised"), [
    (optuna.TrialPruned("MedianPruner: val_acc 0.1 at epoch 2"), TrialState.PRUNED, "PRUNED", False),
    (KeyboardInterrupt(), TrialState.FAIL, "INTERRUPTED", True),
    (Terminated(), TrialState.FAIL, "INTERRUPTED", True),
    (StorageError("MLflow store 'x' is locked"), TrialState.FAIL, "FAIL", True),
    (ValueError("bad\nsecond line"), TrialState.FAIL, "FAIL", False),
])
def test_each_way_a_trial_ends_is_classified_once(err: BaseException, state: TrialState, run_state: str,
                                                  reraised: bool) -> None:
    end = classify(err, 2, {"neck": "gap"})
    assert (end.state, end.run_state, end.reraise is err) == (state, run_state, reraised)
    if state == TrialState.PRUNED:
        assert end.tags is not None and end.tags["tlb.pruned_epoch"] == "2" and ERROR_ATTR not in end.attrs
    else:
        assert end.attrs["neck"] == "gap" and "\n" not in end.attrs[ERROR_ATTR]
    # the store that failed is not written again: Optuna alone records why
    assert end.record_run is not isinstance(err, StorageError)
    if isinstance(err, Terminated):
        assert end.error == "interrupted by SIGTERM"


def test_what_is_no_trial_end_propagates() -> None:
    with pytest.raises(GeneratorExit):
        classify(GeneratorExit(), 0, {})
