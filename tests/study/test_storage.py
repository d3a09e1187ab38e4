"""The Optuna behaviour tl-bench relies on behind ``tl_bench.study.storage``, pinned on a real SQLite storage."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import event

from tl_bench.study.storage import (
    ERROR_ATTR,
    ask,
    fail_trial,
    heartbeat,
    make_storage,
    open_study,
    set_trial_attrs,
    stale_trials,
    tell,
)


def _study(tmp_path: Path, *, grace: int = 2) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=1,
                                         grace_period=grace)
    return optuna.create_study(storage=storage, study_name="pin")


def test_a_beating_trial_is_never_stale_and_a_silent_one_is(tmp_path: Path) -> None:
    study = _study(tmp_path)
    beating, silent = ask(study), ask(study)
    with heartbeat(study, beating):
        with heartbeat(study, silent):
            pass  # one beat, then silence
        time.sleep(3.2)  # past the 2 s grace period
        stale = [t.number for t in stale_trials(study)]
    assert stale == [silent.number]


def test_fail_trial_records_the_reason_once(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = ask(study)
    frozen = study.get_trials(deepcopy=False)[trial.number]
    assert fail_trial(study, frozen, "worker 123 stopped") is True
    assert fail_trial(study, frozen, "again") is False  # already ended: left as it is
    stored = study.get_trials(deepcopy=False)[trial.number]
    assert stored.state == TrialState.FAIL and stored.user_attrs[ERROR_ATTR] == "worker 123 stopped"


def test_ask_with_a_heartbeat_storage_raises_no_warning(tmp_path: Path) -> None:
    study = _study(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trial = ask(study)
    assert trial.number == 0


def test_storage_without_heartbeat_has_no_stale_trials(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'plain.db'}")
    ask(study)
    assert stale_trials(study) == []


def test_open_study_names_the_metrics_and_only_one_caller_creates(tmp_path: Path) -> None:
    storage = make_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    kwargs = dict(directions=["maximize", "minimize"], metric_names=["val_acc", "train_time_s"],
                  sampler=optuna.samplers.RandomSampler(), pruner=optuna.pruners.NopPruner(), space_digest="d1",
                  source="s.yaml")
    first, created = open_study(storage, "s/digits", **kwargs)
    again, created_again = open_study(storage, "s/digits", **kwargs)
    assert (created, created_again) == (True, False)
    assert optuna.load_study(study_name="s/digits", storage=storage).metric_names == ["val_acc", "train_time_s"]


def test_set_trial_attrs_stores_what_the_setters_would_in_one_write(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = ask(study)
    set_trial_attrs(trial, {"host": "h", "pid": 12, "threads": 2})
    set_trial_attrs(trial, {"test_acc": 0.5}, {1: 0.25, 2: float("inf")})
    set_trial_attrs(trial, {"pid": 13, "test_acc": 0.5}, {2: 0.5, 3: float("nan")})  # rewrites what is there
    assert trial.user_attrs == {"host": "h", "pid": 13, "threads": 2, "test_acc": 0.5}  # the trial object agrees
    study.tell(trial, 0.5)
    stored = optuna.load_study(study_name="pin", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials[0]
    assert stored.user_attrs == {"host": "h", "pid": 13, "threads": 2, "test_acc": 0.5}
    assert {k: v for k, v in stored.intermediate_values.items() if k < 3} == {1: 0.25, 2: 0.5}
    assert math.isnan(stored.intermediate_values[3]) and stored.state == TrialState.COMPLETE
    with pytest.raises(RuntimeError):  # an ended trial is not written to, as with Optuna's own setters
        set_trial_attrs(trial, {"late": 1})


def _told(folder: Path, values: list[float] | None, state: TrialState | None, ours: bool) -> tuple[tuple, int]:
    """The stored outcome of one trial told by ``tell`` (ours) or by set_trial_attrs then ``study.tell``,
    read back through the same study, as its sampler reads it; and the commits ``tell`` made."""
    folder.mkdir()
    study = _study(folder)
    trial = ask(study)
    trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    trial.report(0.25, 1)  # reported as it came, as a pruned trial's are
    attrs, steps = {"test_acc": 0.5}, {2: 0.75}
    commits: list[object] = []
    if ours:
        engine, count = study._storage._backend.engine, commits.append
        event.listen(engine, "commit", count)
        tell(study, trial, values, state=state, attrs=attrs, steps=steps)
        event.remove(engine, "commit", count)
    else:
        set_trial_attrs(trial, attrs, steps)
        study.tell(trial, values, state=state)
    got = study.trials[-1]
    return (got.state, got.values, got.user_attrs, got.intermediate_values, got.datetime_complete is not None), \
        len(commits)


@pytest.mark.parametrize(("values", "state", "ends"), [
    ([0.5], None, TrialState.COMPLETE),
    ([float("nan")], None, TrialState.FAIL),  # not a value Optuna takes: FAIL, as study.tell decides
    (None, TrialState.PRUNED, TrialState.PRUNED),
    (None, TrialState.FAIL, TrialState.FAIL),
])
def test_tell_stores_what_optuna_tell_would_in_one_write(
    tmp_path: Path, values: list[float] | None, state: TrialState | None, ends: TrialState
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns of the NaN value; so does tell
        theirs, _ = _told(tmp_path / "optuna", values, state, ours=False)
        ours, commits = _told(tmp_path / "ours", values, state, ours=True)
    assert ours == theirs
    assert ours[0] == ends and commits == 1
    if state == TrialState.PRUNED:
        assert ours[1] == [0.75]  # its last intermediate value, as Optuna gives a pruned trial


def test_set_trial_attrs_on_a_fixed_trial_uses_its_setters() -> None:
    trial = optuna.trial.FixedTrial({"lr": 0.1})
    set_trial_attrs(trial, {"neck": "gap"})
    assert trial.user_attrs == {"neck": "gap"}
