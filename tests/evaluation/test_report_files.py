"""The report folder: every file, readable back to the numbers it was written from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tl_bench.evaluation import REPORT_FILES, build_report, write_report
from tl_bench.evaluation.report_pages import MAX_CONFUSION_CLASSES


def noisy_split(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) + 2.5 * torch.nn.functional.one_hot(labels, k)
    return logits, labels


def test_the_folder_holds_every_file_with_the_report_numbers(tmp_path: Path) -> None:
    logits, labels = noisy_split(300, 6, seed=0)
    names = ["apple", "bee", "cat|dog", "<duck>", "eel", "fig"]  # a pipe and markup must not break tables
    report = build_report(logits, labels, class_names=names)
    paths = write_report(report, tmp_path / "eval")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(REPORT_FILES)

    confusion = pd.read_csv(paths["confusion.csv"], index_col=0)
    assert confusion.to_numpy().tolist() == report.confusion.tolist()
    assert list(confusion.columns) == names and confusion.to_numpy().sum() == 300
    assert np.trace(confusion.to_numpy()) / 300 == pytest.approx(report.summary["top1"])

    per_class = pd.read_csv(paths["per_class.csv"])
    assert per_class["f1"].tolist() == pytest.approx(report.per_class["f1"].tolist())
    assert per_class["support"].tolist() == confusion.sum(axis=1).tolist()

    summary = json.loads(paths["summary.json"].read_text())
    assert summary["top1"] == pytest.approx(report.summary["top1"])
    assert summary["temperature"] == pytest.approx(report.temperature)
    assert summary["worst_pairs"][0]["count"] == int(report.worst_pairs["count"].iloc[0])

    assert paths["confusion.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["report.md"].read_text()
    assert f"| Top-1 accuracy | {report.summary['top1']:.4f} |" in md
    assert "| cat\\|dog |" in md  # escaped, so the row keeps its columns
    html = paths["report.html"].read_text()
    assert "&lt;duck&gt;" in html and "<duck>" not in html
    assert html.count("<table>") == 4 and 'src="data:image/png;base64,' in html  # image inline, no sibling link


def test_many_classes_leave_the_confusion_table_to_the_csv(tmp_path: Path) -> None:
    k = MAX_CONFUSION_CLASSES + 1
    logits, labels = noisy_split(200, k, seed=1)
    paths = write_report(build_report(logits, labels), tmp_path)
    html = paths["report.html"].read_text()
    assert html.count("<table>") == 3 and f"{k} classes: see confusion.csv" in html
    assert pd.read_csv(paths["confusion.csv"], index_col=0).shape == (k, k)


@pytest.mark.slow
def test_per_class_scores_agree_with_mlflow_evaluate(tmp_path: Path, mlflow_db: str) -> None:
    """The per-class and weighted scores are the numbers ``mlflow.models.evaluate`` gives."""
    import mlflow

    logits, labels = noisy_split(200, 4, seed=2)
    report = build_report(logits, labels)
    data = pd.DataFrame({"label": labels.numpy(), "pred": logits.argmax(1).numpy()})
    client = mlflow.MlflowClient(mlflow_db)
    experiment = client.create_experiment("evaluate", artifact_location=(tmp_path / "artifacts").as_uri())
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_db)
    try:
        with mlflow.start_run(experiment_id=experiment):
            result = mlflow.models.evaluate(data=data, targets="label", predictions="pred", model_type="classifier")
    finally:
        mlflow.set_tracking_uri(before)
    theirs = result.artifacts["per_class_metrics"].content.set_index("positive_class").sort_index()
    ours = report.per_class.set_index("class")
    for score in ("precision", "recall", "f1"):
        assert ours[score].tolist() == pytest.approx(theirs[f"{score}_score"].tolist())
        assert report.summary[f"weighted_{score}"] == pytest.approx(result.metrics[f"{score}_score"])
    assert report.summary["top1"] == pytest.approx(result.metrics["accuracy_score"])
