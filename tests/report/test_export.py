"""Leaderboard files: CSV round trip, Markdown and JSON, unwritable paths; a store of > 1,000 runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.report.test_trial_store import TrialStore
from tl_bench.errors import OutputError
from tl_bench.report import CSV_COLUMNS, format_board, leaderboard, read_csv, write_board, write_csv
from tl_bench.report.readable import format_number

AWKWARD = 'pets, "v2" — café 日本'


@pytest.fixture()
def store(tmp_path: Path) -> TrialStore:
    return TrialStore(tmp_path / "store", study='study "A", ünï')


def test_csv_round_trip_with_commas_quotes_and_non_ascii(store: TrialStore, tmp_path: Path) -> None:
    store.trial(AWKWARD, neck='gap,"avg"', weights="local:réseau", freeze_depth="all", val_acc=0.9, test_acc=0.8)
    store.trial(AWKWARD, neck="gem", freeze_depth=2, val_acc=0.7, test_acc=0.75, seed=1)
    store.trial(AWKWARD, neck="gem", freeze_depth=2, val_acc=0.8, test_acc=0.65, seed=2)
    store.trial("digits", head="mlp", drop=("test_acc",))
    board = leaderboard(store.uri)
    path = write_csv(board, tmp_path / "board.csv")
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(board.columns)
    assert '"gap,""avg"""' in text  # RFC 4180 quoting of commas and quotes
    pd.testing.assert_frame_equal(pd.read_csv(path), board)
    pd.testing.assert_frame_equal(read_csv(path), board)
    assert set(board["study"]) == {'study "A", ünï'}


def test_read_csv_keeps_numeric_looking_freeze_depths_as_text(store: TrialStore, tmp_path: Path) -> None:
    store.trial(freeze_depth=0)
    store.trial(freeze_depth=3, neck="gem")
    board = leaderboard(store.uri)
    path = write_csv(board, tmp_path / "board.csv")
    back = read_csv(path)
    pd.testing.assert_frame_equal(back, board)
    assert back["freeze_depth"].tolist() == ["0", "3"]


def test_markdown_and_json(store: TrialStore, tmp_path: Path) -> None:
    store.trial(neck="a|b", val_acc=0.9, test_acc=0.875)
    board = leaderboard(store.uri)
    md = format_board(board, "md").splitlines()  # the terminal table's columns: one dataset is not shown
    assert md[0].startswith("| rank | backbone |") and md[1].startswith("|---|")
    assert "a\\|b" in md[2] and "| 0.8750 |" in md[2] and "| 1,000 |" in md[2]
    every = format_board(board, "md", all_columns=True).splitlines()
    assert every[0] == "| " + " | ".join(board.columns) + " |" and "| 2,000 |" in every[2]
    records = json.loads((write_board(board, tmp_path / "board.json")).read_text(encoding="utf-8"))
    assert list(records[0]) == list(board.columns) and records[0]["neck"] == "a|b"
    with pytest.raises(OutputError, match="accepted: csv, md, json"):
        format_board(board, "xlsx")


def test_unwritable_path_is_a_one_line_error(store: TrialStore, tmp_path: Path) -> None:
    store.trial()
    with pytest.raises(OutputError) as err:
        write_csv(leaderboard(store.uri), tmp_path / "no" / "such" / "folder" / "board.csv")
    assert "cannot write the leaderboard" in str(err.value) and "\n" not in str(err.value)


def _no_fsync(dbapi_connection, connection_record) -> None:  # type: ignore[no-untyped-def]
    # A throwaway store: commits need not wait for the disk.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


@pytest.mark.slow
def test_more_than_a_thousand_runs(tmp_path: Path) -> None:
    event.listen(Engine, "connect", _no_fsync)
    try:
        store = TrialStore(tmp_path, study="big")
        n = 1_010
        now = int(time.time() * 1000)
        parent = store.parent("digits")
        start = time.perf_counter()
        for i in range(n):  # lean runs through the batched API: create, one log_batch, status
            tags = {"tlb.kind": "trial", "tlb.study": store.study, "tlb.dataset": "digits", "tlb.trial": str(i),
                    "tlb.state": "COMPLETE", "mlflow.parentRunId": parent}
            run_id = store.client.create_run(store.experiment_id, tags=tags).info.run_id
            params = {"backbone": "test_resnet", "weights": "scratch", "freeze_depth": str(i % 4), "neck": f"n{i}",
                      "head": "linear", "lr": "0.001", "batch_size": "64", "epochs": "3", "seed": "0"}
            metrics = {"val_acc": (i % 97) / 97, "test_acc": (i % 89) / 89, "train_time_s": 1.0 + i % 13}
            store.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                                   params=[Param(k, v) for k, v in params.items()])
            store.client.set_terminated(run_id, "FINISHED")
        fill_s = time.perf_counter() - start
    finally:
        event.remove(Engine, "connect", _no_fsync)
    board = leaderboard(store.uri)
    assert len(board) == n, f"read {len(board)} of {n} runs (fill took {fill_s:.0f} s)"
    assert board["rank"].min() == 1 and list(board.columns[: len(CSV_COLUMNS)]) == list(CSV_COLUMNS)
    assert board["val_acc"].is_monotonic_decreasing  # ranked by validation (one seed each: the bound is the mean)


@pytest.mark.parametrize(
    ("value", "column", "text"),
    [
        (2561, "params_trainable", "2,561"),
        (94331.0, "params_trainable", "94,331"),
        (94331.0, "mean_params_trainable", "94,331"),
        (8198020.0, "flops_fwd_per_image", "8,198,020"),
        (3, "n_seeds", "3"),
        (1.5, "mean_rank", "1.5"),
        (1780.5, "mean_params_trainable", "1,780.5"),
        (0.91, "test_acc", "0.9100"),
        (0.875, "val_acc_lcb[digits]", "0.8750"),
        (3.0, "train_time_s", "3.00"),
        (1234.5678, "mean_train_time_s", "1,234.57"),
        (12345, "trial", "12345"),
        (0.001, "lr", "1.00e-03"),
        (3e-05, "lr", "3.00e-05"),
        (123.456, "peak_mem_mb", "123.5"),
        (54321.2, "train_throughput_ips", "54,321"),
        (float("nan"), "test_acc", "-"),
        ("gap", "neck", "gap"),
    ],
)
def test_one_number_format_per_kind_of_column(value: object, column: str, text: str) -> None:
    assert format_number(value, column) == text
