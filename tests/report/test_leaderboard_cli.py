"""``tl-bench leaderboard`` through a subprocess: table, files, formats, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.report.test_trial_store import TrialStore
from tl_bench.report import CSV_COLUMNS


def tl_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "tl_bench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TrialStore:
    store = TrialStore(tmp_path_factory.mktemp("cli-store"), study="cli")
    store.trial("digits", backbone="test_resnet", val_acc=0.9, test_acc=0.91, train_time_s=3.0)
    store.trial("digits", backbone="test_vit", val_acc=0.8, test_acc=0.85, train_time_s=1.0)
    store.trial("shapes", backbone="test_resnet", val_acc=0.7, test_acc=0.72, train_time_s=2.0)
    store.trial("shapes", backbone="test_vit", val_acc=0.6, test_acc=0.61, train_time_s=2.5)
    return store


def test_table_and_csv(store: TrialStore, tmp_path: Path) -> None:
    out = tmp_path / "board.csv"
    done = tl_bench("leaderboard", "--tracking-uri", store.uri, "--study", "cli", "--csv", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test_resnet" in done.stdout and "0.91" in done.stdout and "ranked by val_acc_lcb" in done.stdout
    assert f"wrote 4 rows to {out}" in done.stderr
    board = pd.read_csv(out)
    assert list(board.columns[: len(CSV_COLUMNS)]) == list(CSV_COLUMNS)
    assert board.groupby("dataset")["rank"].min().tolist() == [1, 1]


def test_json_format_across_datasets(store: TrialStore, tmp_path: Path) -> None:
    done = tl_bench("leaderboard", "--tracking-uri", store.uri, "--across-datasets", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["backbone"] for r in rows] == ["test_resnet", "test_vit"]
    assert rows[0]["wins"] == 2 and rows[0]["mean_rank"] == 1.0


@pytest.mark.slow
def test_user_errors_are_one_line_and_exit_2(store: TrialStore, tmp_path: Path) -> None:
    work = tmp_path / "work"  # a missing folder outside the working folder is never created
    work.mkdir()
    bad_path = tl_bench("leaderboard", "--tracking-uri", store.uri, "--csv", str(tmp_path / "missing" / "b.csv"),
                        cwd=work)
    no_store = tl_bench("leaderboard", cwd=tmp_path)
    for done, words in ((bad_path, "cannot write the leaderboard"), (no_store, "no MLflow store given")):
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()
