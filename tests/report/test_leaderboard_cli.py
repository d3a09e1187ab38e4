"""``tl-bench leaderboard`` through a subprocess (and in process where only the exit matters): table,
files, formats, number formats, misspelled names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.report.test_trial_store import TrialStore
from tl_bench.cli import main
from tl_bench.report import CSV_COLUMNS


def tl_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "tl_bench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TrialStore:
    store = TrialStore(tmp_path_factory.mktemp("cli-store"), study="cli")
    store.trial("digits", backbone="test_resnet", val_acc=0.9, test_acc=0.91, train_time_s=3.0, params_trainable=2561,
                flops_fwd_per_image=8198020.0)
    store.trial("digits", backbone="test_vit", val_acc=0.8, test_acc=0.85, train_time_s=1.0, params_trainable=94331)
    store.trial("shapes", backbone="test_resnet", val_acc=0.7, test_acc=0.72, train_time_s=2.0)
    store.trial("shapes", backbone="test_vit", val_acc=0.6, test_acc=0.61, train_time_s=2.5)
    return store


def test_table_and_csv(store: TrialStore, tmp_path: Path) -> None:
    done = tl_bench("leaderboard", "--tracking-uri", store.uri, "--study", "cli", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test_resnet" in done.stdout and "0.9100" in done.stdout and "ranked by val_acc_lcb" in done.stdout
    assert "2,561" in done.stdout and "94,331" in done.stdout and "1,000" in done.stdout  # one format for counts
    out = tmp_path / "board.csv"
    done = tl_bench("leaderboard", "--tracking-uri", store.uri, "--study", "cli", "--csv", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (f"wrote 4 rows to {out}\n", "")  # where it wrote, not the table again
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


def test_markdown_is_the_readable_table(store: TrialStore, tmp_path: Path) -> None:
    done = tl_bench("leaderboard", "--tracking-uri", store.uri, "--format", "md", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("| rank | dataset | backbone | weights | freeze_depth | neck | head | val_acc | test_acc "
                        "| params_trainable | train_time_s | epochs | lr | trial | is_pareto |")  # the CSV's names
    assert "| 0.9100 | 2,561 | 3.00 |" in lines[2] and "| 94,331 |" in lines[3] and len(lines) == 6
    every = tl_bench("leaderboard", "--tracking-uri", store.uri, "--format", "md", "--all-columns", cwd=tmp_path)
    assert every.returncode == 0, every.stderr
    header = every.stdout.splitlines()[0]
    assert header.startswith("| rank | dataset | backbone | weights | freeze_depth | n_stages |") and "| run_id |" in header
    assert "| 8,198,020 |" in every.stdout and "e+0" not in every.stdout


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--dataset", "digit"], "error: no dataset 'digit' in the store (did you mean 'digits'?); accepted: digits, shapes"),
        (["--study", "cli", "--dataset", "shape"], "error: no dataset 'shape' in study 'cli' (did you mean 'shapes'?); accepted: digits, shapes"),
        (["--study", "clii"], "error: no study 'clii' in the store (did you mean 'cli'?); accepted: cli"),
        (["--metric", "val_acuracy"], "error: no trial run has the metric 'val_acuracy' (did you mean 'val_acc'?); accepted: "),
        (["--weights", "scrach"], "error: no trial run has weights 'scrach' (did you mean 'scratch'?); accepted: scratch"),
        (["--backbone", "test_resnt*"], "error: no trial run's backbone matches 'test_resnt*' (did you mean 'test_resnet'?); accepted: test_resnet, test_vit"),
    ],
    ids=["dataset", "dataset-of-study", "study", "metric", "weights", "backbone"],
)
def test_a_misspelled_name_is_one_line_naming_what_exists(
    store: TrialStore, args: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["leaderboard", "--tracking-uri", store.uri, *args])
    out, err = capsys.readouterr()
    assert (stop.value.code, out) == (2, "") and err.startswith(line) and err.count("\n") == 1, err


def test_a_dataset_without_finished_trials_is_an_empty_board(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = TrialStore(tmp_path / "store", study="pruned")
    store.trial("digits", state="PRUNED", drop=("test_acc",))
    with pytest.raises(SystemExit) as stop:
        main(["leaderboard", "--tracking-uri", store.uri, "--dataset", "digits"])
    out, err = capsys.readouterr()
    assert stop.value.code == 0 and "no finished trials match" in out and err == ""


def test_export_of_a_misspelled_dataset_names_the_ones_there(store: TrialStore, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["export", "--tracking-uri", store.uri, "--dataset", "digit", "--out", str(tmp_path / "model")])
    _, err = capsys.readouterr()
    assert stop.value.code == 2
    assert err == "error: no dataset 'digit' in the store (did you mean 'digits'?); accepted: digits, shapes\n"
