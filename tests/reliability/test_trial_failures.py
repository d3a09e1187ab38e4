"""A trial whose loss turns NaN and a trial that runs out of memory each end FAIL with the reason in
both stores, and the study goes on to its budget.

The out-of-memory trial asks for an MLP head of 2**46 hidden units: the allocator
refuses the 27 PB request at once (a real allocation failure, raised by torch as
it would be for a model that does not fit), so the machine's memory is never
actually exhausted; the test checks both the speed and the peak memory.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from optuna.trial import TrialState

from reliability_support import load_trials, spec_data, trial_runs, write_spec
from tl_bench.spec import load_spec
from tl_bench.study import RunOptions, run_spec

pytestmark = pytest.mark.slow

HUGE = 2**46


def test_nan_loss_and_out_of_memory_trials_fail_with_the_reason_and_the_study_goes_on(tmp_path: Path, mlflow_db: str) -> None:
    data = spec_data(
        space={"backbones": ["test_resnet"], "freeze_depth": [0], "neck": ["gap"], "head": ["linear", "mlp"],
               "lr": [1.0e-2, 1.0e30], "head_hidden": [64, HUGE]},
        fixed={"epochs": 1, "batch_size": 100, "optimizer": "sgd"},
        baselines=[
            {"head": "linear", "lr": 1.0e30, "head_hidden": 64},  # the loss overflows to NaN/inf
            {"head": "mlp", "lr": 1.0e-2, "head_hidden": HUGE},  # cannot be allocated
            {"head": "mlp", "lr": 1.0e-2, "head_hidden": 64},  # a sound trial
        ],
        budget={"n_trials": 3},  # a budget of N starts no more than N failing trials: room for the two failures
    )
    spec = load_spec(write_spec(tmp_path, data))
    outcome = run_spec(spec, RunOptions(n_trials=3), quiet=True)[0]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    trials = load_trials(spec.storage_url)
    assert [t.state for t in trials[:3]] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert outcome.counts["COMPLETE"] >= 1 and outcome.counts["FAIL"] >= 2
    nan, oom = trials[0], trials[1]
    assert nan.user_attrs["error"].startswith("NonFiniteLossError: loss became")
    assert "can't allocate memory" in oom.user_attrs["error"] or "out of memory" in oom.user_attrs["error"].lower()
    assert (oom.datetime_complete - oom.datetime_start).total_seconds() < 30  # refused at once, not after swapping
    assert peak_gib < 8, f"peak RSS {peak_gib:.1f} GiB"

    runs = {r.info.run_id: r for r in trial_runs(spec.tracking_uri)}
    for trial in (nan, oom):
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FAILED" and run.data.tags["tlb.state"] == "FAIL"
        assert run.data.tags["tlb.error"] == trial.user_attrs["error"]  # the same reason in both stores
    good = runs[trials[2].user_attrs["mlflow_run_id"]]
    assert good.info.status == "FINISHED" and good.data.metrics["val_acc"] == pytest.approx(trials[2].values[0])
