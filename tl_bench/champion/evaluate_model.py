"""``tl-bench evaluate``: a model's evaluation report on a study's test split or on a labelled image folder,
recorded as an MLflow run of kind ``evaluation``.

The model is a registered version (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``) or a run's
model (``runs:/RUN_ID/model``), rebuilt from its files. On a study's split (the model's own study
by default, or a dataset of the study file given) the temperature is fitted on that split's
validation images; on an image folder, which has no validation images, the temperature stored with
the model is used (fitted on its own study's validation split when it was registered), else one is
fitted on the folder itself and the report says so. The run goes into the experiment of the
model's run, with the report under ``evaluation/``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import tl_bench
from tl_bench.champion.classifier import Classifier, load_classifier
from tl_bench.champion.version_report import SplitPredictions, evaluate_classifier, headline, predict_split, record_report
from tl_bench.config import DataSettings
from tl_bench.data import load_dataset_for
from tl_bench.data.imagefolder import LAYOUTS, load_imagefolder_source
from tl_bench.errors import DatasetError, ModelNotFoundError
from tl_bench.evaluation import ClassifierReport, build_report
from tl_bench.tracking import DATASET, KIND, STUDY, VERSION, Tracker
from tl_bench.tracking.evaluation_record import (
    EVALUATED,
    EVALUATED_ON,
    EVALUATED_VERSION,
    KIND_EVALUATION,
    download_model_files,
    report_uri,
    run_facts,
    source_run,
    stored_temperature,
)
from tl_bench.tracking.model_registry import resolve_version

REFERENCE_WORDS = "models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/model"


@dataclass
class EvaluationOutcome:
    """An evaluation run: what was evaluated on what, its report and where it is."""

    reference: str
    model: str  # NAME version N, or the run's model
    on: str  # the dataset and split, or the image folder
    run_id: str
    report: ClassifierReport
    report_file: str
    route: str
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        s = self.report.summary
        return [f"{self.model} on {self.on}: {headline(self.report)}",
                f"  temperature fitted on {s['temperature_fit_on']}; report: {self.report_file}",
                f"  in the MLflow UI: {self.route} (run {self.run_id}, kind {KIND_EVALUATION})"]


def folder_split(folder: Path, classifier: Classifier) -> tuple[SplitPredictions, list[str]]:
    """The model's logits on a labelled image folder (``imagefolder`` layouts; ``test/`` when it has one),
    labels in the model's class order; the lines of the files left out."""
    pre = classifier.preprocessing
    source = load_imagefolder_source(str(folder), img_size=int(pre["img_size"]), interpolation=str(pre["interpolation"]),
                                     options={})
    part = source.parts.get("test") or source.parts.get("all") or source.parts["train"]
    index = {name: i for i, name in enumerate(classifier.class_names)}
    unknown = [name for name in source.class_names if name not in index]
    if unknown:
        shown = ", ".join(classifier.class_names[:20]) + (", ..." if len(classifier.class_names) > 20 else "")
        raise DatasetError(f"class folder {unknown[0]!r} of {folder} is not a class of the model", shown,
                           lead="; the model's classes: ")
    to_model = np.array([index[name] for name in source.class_names], dtype=np.int64)
    labels = torch.from_numpy(to_model[part.labels])
    return predict_split(classifier.logit_network(), part.images, labels, part.ids), list(source.skipped)


def evaluate_model(
    tracking_uri: str, reference: str, *, data_settings: DataSettings | None = None, folder: Path | None = None,
    dataset_key: str | None = None,
) -> EvaluationOutcome:
    """Evaluate the model ``reference`` names on ``folder``, else on the split ``data_settings`` name (else
    its own study's), and record the run; see the module docstring."""
    start_ms = int(time.time() * 1000)
    if not reference.startswith(("models:/", "runs:/")):
        raise ModelNotFoundError(f"{reference!r} names no model in a store", REFERENCE_WORDS)
    version = resolve_version(tracking_uri, reference)
    run = source_run(tracking_uri, reference)
    if not run:
        raise ModelNotFoundError(f"{reference!r} names no registered version and no run", REFERENCE_WORDS)
    with tempfile.TemporaryDirectory() as tmp:
        classifier = load_classifier(download_model_files(tracking_uri, reference, Path(tmp)))
    label = f"{version.name} version {version.version}" if version is not None else reference
    skipped: list[str] = []
    val: SplitPredictions | None = None
    if folder is not None:
        if not folder.is_dir():
            raise DatasetError(f"{folder} is not a folder", LAYOUTS)
        test, skipped = folder_split(folder, classifier)
        report = build_report(test.logits, test.labels, class_names=classifier.class_names,
                              temperature=stored_temperature(tracking_uri, reference))
        on, key = f"image folder {folder}", folder.name
    else:
        settings = data_settings or classifier.config
        data = load_dataset_for(settings, interpolation=str(classifier.preprocessing["interpolation"]))
        if list(data.class_names) != classifier.class_names:
            raise DatasetError(f"dataset {settings.dataset!r} has other classes than the model",
                               "the dataset the model was trained on, or a folder of its classes")
        evaluation = evaluate_classifier(classifier, data)
        report, val = evaluation.report, evaluation.val
        key = dataset_key or str(classifier.card.get("dataset") or settings.dataset)
        on = f"{key} test split"
    experiment, source_tags = run_facts(tracking_uri, run)
    tracker = Tracker(tracking_uri, experiment)
    tags = {KIND: KIND_EVALUATION, DATASET: key, EVALUATED: reference, EVALUATED_ON: str(folder or key),
            VERSION: tl_bench.__version__, **({STUDY: source_tags[STUDY]} if STUDY in source_tags else {}),
            **({EVALUATED_VERSION: f"{version.name}/{version.version}"} if version is not None else {})}
    s = report.summary
    metrics = [(name, float(s[name]), 0) for name in ("top1", "top5", "macro_precision", "macro_recall", "macro_f1",
                                                       "weighted_f1", "nll", "ece", "temperature", "nll_scaled",
                                                       "ece_scaled", "n_images") if s.get(name) is not None]
    params = {"model": reference, "evaluated_on": on, "temperature_fit_on": str(s["temperature_fit_on"])}
    run_id = tracker.record_run(run_name=f"evaluate-{key}", tags=tags, params=params, metrics=metrics, state="COMPLETE",
                                start_ms=start_ms, end_ms=int(time.time() * 1000))
    about = {"model": label, "reference": reference, "evaluated on": on, "temperature fitted on": str(s["temperature_fit_on"])}
    route = record_report(tracking_uri, run_id, report, about=about, val=val)
    return EvaluationOutcome(reference, label, on, run_id, report, report_uri(tracking_uri, run_id), route, skipped)


__all__ = ["REFERENCE_WORDS", "EvaluationOutcome", "evaluate_model", "folder_split"]
