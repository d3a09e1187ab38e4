"""The evaluation report of a registered version, computed from its files and logged on its run.

A version's model is rebuilt from its logged files (``classifier.load_classifier``), its study's
validation and test splits are loaded as its preprocessing says, and one pass over each gives the
logits the report (``tl_bench.evaluation.build_report``: test split, temperature fitted on
validation) and the per-image validation record (what the ``paired_bootstrap`` gate compares)
are computed from. Both are logged under ``evaluation/`` on the version's run; the version gets
the temperature, headline numbers and a link to the report as tags, and the link in its
description, so the MLflow UI opens the report from the registry page.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from tl_bench.champion.classifier import Classifier, load_classifier
from tl_bench.data import DatasetSplits, LazyImages, load_dataset_for
from tl_bench.evaluation import ClassifierReport, build_report, collect_logits, write_report
from tl_bench.tracking.evaluation_record import (
    REPORT_LINK,
    TEMPERATURE,
    VAL_PREDICTIONS,
    download_model_files,
    log_report,
    read_val_predictions,
    set_model_tags,
)
from tl_bench.tracking.model_registry import describe_version
from tl_bench.tracking.names import MODEL_ID

BATCH_SIZE = 256  # images per forward pass of an evaluation
REPORT_MARK = "Evaluation report:"  # the description line that links the report (replaced when re-evaluated)


class RegisteredVersion(Protocol):
    """What is read of a registry version (MLflow's ``ModelVersion``, which only tracking imports)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str | int: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def tags(self) -> dict[str, str]: ...
    @property
    def description(self) -> str | None: ...


def evaluation_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class SplitPredictions:
    """A split's logits, labels and image ids, in the split's order."""

    ids: list[str]
    labels: torch.Tensor
    logits: torch.Tensor

    @property
    def correct(self) -> np.ndarray:
        return (self.logits.argmax(dim=1) == self.labels).numpy()

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    def frame(self) -> pd.DataFrame:
        """One row per image: ``id``, ``label``, ``predicted``, ``correct`` (``VAL_PREDICTIONS``' columns)."""
        return pd.DataFrame({"id": self.ids, "label": self.labels.numpy(),
                             "predicted": self.logits.argmax(dim=1).numpy(), "correct": self.correct})


def predict_split(net: nn.Module, images: torch.Tensor | LazyImages, labels: torch.Tensor, ids: list[str], *,
                  batch_size: int = BATCH_SIZE) -> SplitPredictions:
    """``net``'s logits (uint8 images in) on every image, in order, on the evaluation device."""
    device = evaluation_device()
    net = net.to(device).eval()
    n = len(labels)
    batches = ((images[i : i + batch_size].to(device), labels[i : i + batch_size]) for i in range(0, n, batch_size))
    try:
        logits, got = collect_logits(net, batches)
    finally:
        net.to("cpu")
    return SplitPredictions(list(ids), got, logits)


@dataclass(frozen=True)
class VersionEvaluation:
    """The test report (temperature fitted on validation) and both splits' predictions."""

    report: ClassifierReport
    val: SplitPredictions
    test: SplitPredictions


def evaluate_splits(val: SplitPredictions, test: SplitPredictions, class_names: list[str]) -> VersionEvaluation:
    report = build_report(test.logits, test.labels, class_names=class_names, val_logits=val.logits,
                          val_labels=val.labels)
    return VersionEvaluation(report, val, test)


def data_for(classifier: Classifier) -> DatasetSplits:
    """The splits of the study the classifier comes from, resized as its preprocessing says."""
    return load_dataset_for(classifier.config, interpolation=str(classifier.preprocessing["interpolation"]))


def evaluate_classifier(classifier: Classifier, data: DatasetSplits) -> VersionEvaluation:
    net = classifier.logit_network()
    val = predict_split(net, data.val.images, data.val.labels, data.val.ids)
    test = predict_split(net, data.test.images, data.test.labels, data.test.ids)
    return evaluate_splits(val, test, classifier.class_names)


def record_report(tracking_uri: str, run_id: str, report: ClassifierReport, *, about: Mapping[str, str],
                  val: SplitPredictions | None = None) -> str:
    """Log the report files (and the validation record) as ``evaluation/`` of the run; returns the
    UI route of its report.md."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "evaluation"
        write_report(report, folder, about=about)
        if val is not None:
            val.frame().to_csv(folder / VAL_PREDICTIONS, index=False)
        return log_report(tracking_uri, run_id, folder)


def headline(report: ClassifierReport) -> str:
    """The report's numbers in one line: top-1, top-5, ECE before and after temperature scaling."""
    s = report.summary
    top5 = f", top-5 {s['top5']:.4f}" if s.get("top5") is not None else ""
    return (f"top-1 {s['top1']:.4f}{top5}, macro F1 {s['macro_f1']:.4f}, ECE {s['ece']:.4f} -> {s['ece_scaled']:.4f} "
            f"at temperature {s['temperature']:.3f} ({s['n_images']} images)")


def publish_report(tracking_uri: str, version: RegisteredVersion, evaluation: VersionEvaluation) -> str:
    """Log ``evaluation`` on the version's run and link it from the version; returns the UI route of
    its report.md."""
    name, number, run_id = str(version.name), str(version.version), str(version.run_id)
    report = evaluation.report
    about = {"model": f"{name} version {number}", "run": run_id, "split": "test",
             "temperature fitted on": "validation", "validation images": str(len(evaluation.val.ids))}
    route = record_report(tracking_uri, run_id, report, about=about, val=evaluation.val)
    s = report.summary
    tags = {TEMPERATURE: repr(float(s["temperature"])), REPORT_LINK: route, "eval_test_top1": repr(float(s["top1"])),
            "eval_val_top1": repr(evaluation.val.accuracy), "eval_ece": repr(float(s["ece"])),
            "eval_ece_scaled": repr(float(s["ece_scaled"]))}
    before = (version.description or "").split(REPORT_MARK)[0].rstrip()
    html = route.replace("/report.md", "/report.html", 1)
    line = f"{REPORT_MARK} [report.md]({route}), [report.html]({html}): test {headline(report)}."
    describe_version(tracking_uri, name, number, tags=tags, description=f"{before}\n\n{line}" if before else line)
    model_id = version.tags.get(MODEL_ID)
    if model_id:
        set_model_tags(tracking_uri, model_id, {TEMPERATURE: tags[TEMPERATURE]})
    return route


def report_version(tracking_uri: str, version: RegisteredVersion) -> VersionEvaluation:
    """Rebuild a registered version from its files, evaluate it on its study's splits and publish
    the report (``publish_report``)."""
    reference = f"models:/{version.name}/{version.version}"
    with tempfile.TemporaryDirectory() as tmp:
        classifier = load_classifier(download_model_files(tracking_uri, reference, Path(tmp)))
    evaluation = evaluate_classifier(classifier, data_for(classifier))
    publish_report(tracking_uri, version, evaluation)
    return evaluation


def validation_record(tracking_uri: str, version: RegisteredVersion) -> pd.DataFrame:
    """The version's per-image validation record, evaluating the version first when it has none."""
    found = read_val_predictions(tracking_uri, str(version.run_id)) if version.run_id else None
    return found if found is not None else report_version(tracking_uri, version).val.frame()


__all__ = ["BATCH_SIZE", "REPORT_MARK", "RegisteredVersion", "SplitPredictions", "VersionEvaluation", "data_for", "evaluate_classifier",
           "evaluate_splits", "evaluation_device", "headline", "predict_split", "publish_report", "record_report",
           "report_version", "validation_record"]
