"""A study whose every trial failed ends `tl-bench run` non-zero, saying why in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import small_spec

pytestmark = pytest.mark.slow


def test_a_study_without_a_complete_trial_exits_non_zero_naming_the_error(tmp_path: Path, mlflow_db: str) -> None:
    path = small_spec(tmp_path, fixed={"epochs": 1, "batch_size": 64, "precision": "fp16", "device": "cpu"},
                      budget={"n_trials": 2})
    done = subprocess.run([sys.executable, "-m", "tl_bench", "run", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "small/digits has no complete trial" in lines[0]
    assert "precision fp16 needs CUDA" in lines[0]  # the trials' own error, once however many failed
    assert "Traceback" not in done.stderr


def test_a_study_with_a_complete_trial_exits_zero(tmp_path: Path, mlflow_db: str) -> None:
    path = small_spec(tmp_path, budget={"n_trials": 1})
    done = subprocess.run([sys.executable, "-m", "tl_bench", "run", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "has no complete trial" not in done.stderr
