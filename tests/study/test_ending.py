"""Who ends a dataset study (``study.ending``), and what an interrupt says it stopped (``study.interrupts``).

A claim is an Optuna study attribute naming a process; the processes here are real ones (this one, its
parent, and one that has exited), the storage a real SQLite file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tl_bench.study.ending import Claim, claim_end, unfinished_end
from tl_bench.study.interrupts import during, interrupt_line, mark
from tl_bench.study.storage import STUDY_UID, SUMMARY_CLAIM, SUMMARY_DONE, make_storage, optuna_study_id
from tl_bench.study.workers import pid_namespace


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(study_name="s", storage=make_storage(f"sqlite:///{tmp_path / 'optuna.db'}"))


def _claim_of(pid: int, ended: int = 2) -> dict[str, object]:
    return {"ended": ended, "token": f"t{pid}", "host": socket.gethostname(), "pid": pid,
            "pid_namespace": pid_namespace(), "at": 0.0}


def _exited_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_an_end_claimed_by_a_process_that_died_is_taken_over_and_reported(study: optuna.Study) -> None:
    study.set_user_attr(SUMMARY_CLAIM, _claim_of(_exited_pid()))
    assert unfinished_end(study) is not None
    claim = claim_end(study, 2)  # the same count of ended trials: a dead claimer's end is not done
    assert claim is not None and claim.pid == os.getpid()
    study.set_user_attr(SUMMARY_DONE, claim.token)
    assert unfinished_end(study) is None and claim_end(study, 2) is None  # done: nothing more to write
    assert claim_end(study, 3) is not None  # a later end is a new one


def test_an_end_held_by_a_live_process_is_left_to_it(study: optuna.Study) -> None:
    study.set_user_attr(SUMMARY_CLAIM, _claim_of(os.getppid()))
    assert claim_end(study, 2) is None and unfinished_end(study) is None


def test_a_claim_of_an_earlier_version_is_written_again_once_and_not_reported(study: optuna.Study) -> None:
    study.set_user_attr(SUMMARY_CLAIM, "2:abc")  # names no process: whether it finished is not known
    assert Claim.read("2:abc") == Claim(2, "abc")
    assert unfinished_end(study) is None
    assert claim_end(study, 2) is not None


def test_a_study_created_again_under_its_name_has_another_id(tmp_path: Path) -> None:
    from tl_bench.study.storage import open_study

    storage = make_storage(f"sqlite:///{tmp_path / 'optuna.db'}")

    def created() -> optuna.Study:
        return open_study(storage, "s", directions=["maximize"], metric_names=["val_acc"],
                          sampler=optuna.samplers.RandomSampler(), pruner=optuna.pruners.NopPruner(),
                          space_digest="d", source="study.yaml")[0]

    first = created()
    first_id = optuna_study_id(first)
    optuna.delete_study(study_name="s", storage=storage)
    second = created()
    assert second._study_id == first._study_id  # SQLite gives the deleted study's id to the next one
    assert optuna_study_id(second) != first_id and STUDY_UID in second.user_attrs


def test_the_interrupt_line_says_what_was_interrupted() -> None:
    def raised(*stages: tuple[str, str], failed: str | None = None) -> KeyboardInterrupt:
        err = KeyboardInterrupt()
        if failed is not None:
            mark(err, failed, kind="trial", trial_failed=True)
        for what, kind in reversed(stages):  # innermost first, as the exception travels out
            try:
                with during(what, kind=kind):
                    raise err
            except KeyboardInterrupt:
                pass
        return err

    assert interrupt_line(raised(failed="trial 3 of x/d")) == \
        "interrupted: trial 3 of x/d was recorded as failed in Optuna and MLflow"
    assert "before it was recorded" in interrupt_line(raised(("trial 3 of x/d", "trial")))
    summary = interrupt_line(raised(("the summary of x/d", "summary")))
    assert "every trial had ended, none was recorded as failed" in summary and "finishes the summary" in summary
    assert interrupt_line(raised(("pretraining", "stage"))) == \
        "interrupted during pretraining: no trial was running, none was recorded as failed"
    assert "no trial was running" in interrupt_line(KeyboardInterrupt())
