"""The terminal leaderboard fits 80 and 120 columns: whole numbers and names, distinct labels, the score kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.report.test_trial_store import TrialStore
from tl_bench.cli import main

LONG = "vit_small_patch16_224.augreg_in21k_ft_in1k"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TrialStore:
    store = TrialStore(tmp_path_factory.mktemp("width-store"), study="width")
    for i, (backbone, weights, lr) in enumerate([(LONG, "pretrained", 0.001), ("convnext_tiny.fb_in22k", "timm:fb_in22k", 3e-4),
                                                 ("resnet50.a1_in1k", "scratch", 0.05)]):
        for seed, dataset in ((0, "cifar10"), (1, "cifar10"), (0, "flowers102")):
            store.trial(dataset, backbone=backbone, weights=weights, lr=lr, seed=seed, val_acc=0.9 - i / 20 + seed / 100,
                        test_acc=0.89 - i / 20, train_time_s=3476.123 * (i + 1), params_trainable=3476123 * (i + 1),
                        peak_mem_mb=5123.4)
    return store


def _board(store: TrialStore, columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           *args: str) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["leaderboard", "--tracking-uri", store.uri, *args])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    return out


def _labels(out: str) -> list[list[str]]:
    """The header labels of every table printed (the row under each top border)."""
    lines = out.splitlines()
    return [[cell.strip() for cell in lines[i + 1].strip("┃").split("┃")] for i, line in enumerate(lines)
            if line.startswith("┏")]


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("across", [False, True])
def test_the_table_fits_the_terminal_without_cutting_anything(
    store: TrialStore, columns: int, across: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _board(store, columns, monkeypatch, capsys, *(["--across-datasets"] if across else []))
    assert max(len(line) for line in out.splitlines()) <= columns
    assert "…" not in out and "..." not in out  # nothing cut to an ellipsis
    tables = _labels(out)
    assert tables and all(len(set(labels)) == len(labels) for labels in tables)  # every label distinct
    for labels in tables:  # what a row is and the score it is ranked by come first
        assert labels[:4] == ["rank", "backbone", "weights", "freeze"]
        assert any(label.endswith(("val_lcb", "val_acc")) for label in labels)
    assert "more column" in out  # what was left out is said, and where to find it
    if columns == 120:
        assert "0.8950" in out or "0.8900" in out  # accuracies whole
        assert not re.search(r"\d,\d{1,2}(?!\d)", out)  # no number cut inside its thousands


def test_across_datasets_labels_each_dataset_column(store: TrialStore, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (labels,) = _labels(_board(store, 250, monkeypatch, capsys, "--across-datasets"))
    assert {"val_lcb[cifar10]", "val_lcb[flowers102]"} <= set(labels) and len(set(labels)) == len(labels)


def test_all_columns_shows_every_column_at_full_width(store: TrialStore, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = _board(store, 80, monkeypatch, capsys, "--all-columns", "--dataset", "cifar10")
    (labels,) = _labels(out)
    assert {"params_total", "peak_mem_mb", "run_id", "is_pareto_params"} <= set(labels)
    assert "…" not in out and LONG in out
