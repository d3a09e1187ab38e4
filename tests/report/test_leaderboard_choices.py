"""What the leaderboard command chooses for the user: each metric's direction, the store it reads, one
format for learning rates and one set of column names in every file format."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.report.test_trial_store import TrialStore
from tl_bench.cli import main
from tl_bench.report import metric_direction
from tl_bench.report.readable import format_number


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TrialStore:
    store = TrialStore(tmp_path_factory.mktemp("choices") / "runs", study="choices")
    store.trial("digits", backbone="test_resnet", lr=0.001, val_acc=0.9, train_time_s=30.0, peak_mem_mb=900.0)
    store.trial("digits", backbone="test_vit", lr=3e-5, val_acc=0.8, train_time_s=10.0, peak_mem_mb=300.0)
    store.trial("digits", backbone="test_efficientnet", lr=0.05, val_acc=0.7, train_time_s=20.0, peak_mem_mb=600.0)
    return store


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def _order(capsys: pytest.CaptureFixture[str], store: TrialStore, *args: str) -> list[str]:
    code, out, err = _run(capsys, "leaderboard", "--tracking-uri", store.uri, "--format", "json", *args)
    assert code == 0, err
    return [row["backbone"] for row in json.loads(out)]


def test_costs_rank_cheapest_first_and_accuracies_best_first(store: TrialStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert _order(capsys, store) == ["test_resnet", "test_vit", "test_efficientnet"]
    assert _order(capsys, store, "--metric", "train_time_s") == ["test_vit", "test_efficientnet", "test_resnet"]
    assert _order(capsys, store, "--metric", "peak_mem_mb") == ["test_vit", "test_efficientnet", "test_resnet"]
    assert _order(capsys, store, "--metric", "train_time_s", "--direction", "max")[0] == "test_resnet"
    assert [metric_direction(m) for m in ("val_acc", "mean_test_acc", "latency_ms", "flops_fwd_per_image",
                                          "params_trainable", "infer_ips")] == ["max", "max", "min", "min", "min", "max"]


def test_a_metric_of_unknown_direction_asks_for_one(store: TrialStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "leaderboard", "--tracking-uri", store.uri, "--metric", "n_stages")
    assert code == 2 and err.startswith("error: metric 'n_stages' has no known direction") and "--direction" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "leaderboard", "--tracking-uri", store.uri, "--ascending", "--direction", "max")
    assert code == 2 and "contradicts" in err
    assert _order(capsys, store, "--metric", "n_stages", "--direction", "min")  # told, it ranks


def test_the_store_is_found_beside_the_study_and_by_path(store: TrialStore, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = Path(store.uri.removeprefix("sqlite:///"))
    beside = tmp_path / "my_data"  # a study copied next to the data writes runs/ there
    (beside / "runs").mkdir(parents=True)
    shutil.copyfile(db, beside / "runs" / "mlflow.db")
    monkeypatch.chdir(beside)
    for args in ((), ("--tracking-uri", "runs/mlflow.db"), ("--tracking-uri", "runs"), ("--tracking-uri", str(db))):
        code, out, err = _run(capsys, "leaderboard", "--format", "csv", *args)
        assert code == 0, (args, err)
        assert len(pd.read_csv(io.StringIO(out))) == 3
    (beside / "studies" / "runs").mkdir(parents=True)
    shutil.copyfile(db, beside / "studies" / "runs" / "mlflow.db")
    code, _, err = _run(capsys, "leaderboard")
    assert code == 2 and "two here" in err  # which one is not guessed


@pytest.mark.parametrize(("value", "text"), [(0.001, "1.00e-03"), (3e-05, "3.00e-05"), (0.000123456, "1.23e-04"),
                                             (0.05, "0.05"), (0.1, "0.1"), (1.0, "1")])
def test_learning_rates_read_one_way(value: float, text: str) -> None:
    assert format_number(value, "lr") == text


def test_markdown_names_columns_as_csv_does(store: TrialStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, md, _ = _run(capsys, "leaderboard", "--tracking-uri", store.uri, "--format", "md")
    assert code == 0
    code, csv, _ = _run(capsys, "leaderboard", "--tracking-uri", store.uri, "--format", "csv")
    headers = [h.strip() for h in md.splitlines()[0].strip("|").split("|")]
    assert set(headers) <= set(pd.read_csv(io.StringIO(csv)).columns)
    assert {"freeze_depth", "params_trainable", "train_time_s", "lr"} <= set(headers)
    assert "| 1.00e-03 |" in md and "| 3.00e-05 |" in md
