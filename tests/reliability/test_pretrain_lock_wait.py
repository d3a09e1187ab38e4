"""A pretraining that another process holds: the waiter says who holds it (host, pid, since when), waits
at most ``TL_BENCH_PRETRAIN_WAIT_S`` seconds, then ends with one line and exit code 2."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tl_bench.errors import TLBenchError
from tl_bench.pretrain import WAIT_ENV, checkpoint_path, pretrain_wait_s
from tl_bench.spec import load_spec

from reliability_support import Processes, tlb, wait_for, write_spec


def _pretraining_spec(folder: Path, epochs: int) -> Path:
    return write_spec(folder, {
        "name": "ptw",
        "datasets": [{"name": "digits", "img_size": 16, "train_size": 100, "val_size": 50}],
        "space": {"backbones": [{"name": "test_resnet", "weights": ["local:shapes"]}]},
        "budget": {"n_trials": 1},
        "pretrain": {"shapes": {
            "dataset": {"name": "shapes", "img_size": 16, "val_size": 20,
                        "options": {"num_classes": 3, "n_per_class": 30}},
            "epochs": epochs, "lr": 3.0e-3, "batch_size": 30}},
    })


@pytest.mark.slow
def test_a_held_pretraining_is_named_then_given_up_after_the_wait(tmp_path: Path, mlflow_db: str,
                                                                 processes: Processes) -> None:
    spec = _pretraining_spec(tmp_path, epochs=100_000)  # the holder trains for as long as the test needs
    lock = checkpoint_path(load_spec(spec), "shapes", "test_resnet").with_suffix(".lock")
    holder = processes.start(["pretrain", spec.name], cwd=tmp_path)
    note = wait_for(lambda: lock.is_file() and lock.read_text() and json.loads(lock.read_text()), timeout=240,
                    what="the holder to take the pretraining lock", proc=holder)
    assert note["pid"] == holder.pid and note["host"] == socket.gethostname()
    done = tlb(["pretrain", spec.name], cwd=tmp_path, env={WAIT_ENV: "2"}, timeout=120)  # was: waited for ever
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error: ")] == [lines[-1]] and "Traceback" not in done.stderr
    who = f"held by pid {holder.pid} on host {socket.gethostname()} since {note['since']}"
    assert any(line.startswith("waiting up to 2 s for the pretraining of test_resnet") and who in line
               for line in lines), lines
    assert lines[-1].startswith("error: the pretraining of test_resnet for weights local:shapes is " + who)
    assert "gave up after waiting 2 s" in lines[-1] and WAIT_ENV in lines[-1]
    assert holder.poll() is None  # the holder's pretraining goes on undisturbed


@pytest.mark.parametrize("given", ["soon", "0", "-5", "inf"])
def test_the_wait_must_be_a_positive_number_of_seconds(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv(WAIT_ENV, given)
    with pytest.raises(TLBenchError, match=f"{WAIT_ENV}='{given}' is not a number of seconds; accepted: a positive"):
        pretrain_wait_s()
