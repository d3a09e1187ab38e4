"""A soup or an ensemble recorded as one MLflow run, one logged model and one registered version, then gated.

The run (kind ``soup`` or ``ensemble``) is nested under the study's parent run, as a refit is; it
holds validation and test accuracy, the inference cost (parameters and forward FLOPs summed over
the models that run, and latency measured as ``tl_bench.train.latency`` measures a trial's), the
evaluation report under ``evaluation/`` and the model (``runs:/<run id>/model``, served by MLflow
like a trial's). The model becomes a version of ``<study>-<dataset>``; the study's promotion rule
decides whether it takes ``champion``. Its score for the ``lcb`` rule is one measurement's
(``champion.single_score``); ``paired_bootstrap`` pairs its validation images with the champion's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tl_bench
from tl_bench.champion import Classifier, gate_version, publish_report, recorded_score, score_tags, single_score
from tl_bench.champion.version_report import data_for, evaluate_classifier, evaluation_device, headline
from tl_bench.evaluation import Decision
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.study.keep import log_classifier
from tl_bench.tracking import DATASET, KIND, PARENT_RUN_ID, RUN_ID, STUDY, VERSION, Tracker
from tl_bench.tracking.evaluation_record import MEMBERS, report_uri
from tl_bench.tracking.model_registry import champion, get_version, register_version
from tl_bench.train.latency import LatencySettings, measure_latency


@dataclass
class CombinedOutcome:
    """What a soup or an ensemble command did: its run, version, numbers and the gate's answer."""

    kind: str
    dataset: str
    name: str  # the registered model
    run_id: str
    version: str
    members: list[int]  # trials
    val_acc: float
    test_acc: float
    cost: dict[str, float]
    decision: Decision
    report: str  # where report.html is stored
    route: str  # the report's page in the MLflow UI (after its address)
    summary: str  # the report's headline
    detail: str = ""  # how it was made (greedy or uniform, candidates)

    def lines(self) -> list[str]:
        trials = ", ".join(str(t) for t in self.members)
        cost = (f"{self.cost['params_total']:,.0f} params, {self.cost['flops_fwd_per_image'] / 1e6:,.2f} MFLOPs per image"
                + (f", {self.cost['latency_ms']:.2f} ms per image" if "latency_ms" in self.cost else ""))
        alias = "champion" if self.decision.promote else "challenger"
        return [f"{self.dataset}: {self.kind} of trials {trials}{f' ({self.detail})' if self.detail else ''}: "
                f"val_acc {self.val_acc:.4f}, test_acc {self.test_acc:.4f}; {cost}",
                f"registered as version {self.version} of {self.name} with alias {alias}: {self.decision.reason}",
                f"evaluation report (test {self.summary}): {self.report}",
                f"  in the MLflow UI: {self.route}"]


def record_combined(
    spec: StudySpec, dataset: DatasetSpec, *, kind: str, classifier: Classifier, bundle: Path, members: list[int],
    params: dict[str, str], start_ms: int, detail: str = "",
) -> CombinedOutcome:
    """Evaluate ``classifier`` (written in ``bundle``), record it as a run of ``kind``, log and register its
    model and let the promotion gate judge it; see the module docstring."""
    uri = str(spec.tracking_uri)
    data = data_for(classifier)
    evaluation = evaluate_classifier(classifier, data)
    val_acc, test_acc = evaluation.val.accuracy, evaluation.test.accuracy
    cost: dict[str, Any] = classifier.cost()
    size = int(classifier.preprocessing["img_size"])
    latency = measure_latency(classifier.logit_network(), (kind, tuple(members), size),
                              LatencySettings(img_size=size, device=str(evaluation_device())))
    cost.update(latency_ms=latency.latency_ms, infer_ips=latency.infer_ips)
    tracker = Tracker(uri, spec.name, artifact_location=spec.artifact_location)
    parent = tracker.find_parent_run(spec.study_name(dataset)) or ""
    trials = ",".join(str(t) for t in members)
    tags = {KIND: kind, STUDY: spec.name, DATASET: dataset.key, MEMBERS: trials, VERSION: tl_bench.__version__,
            **({PARENT_RUN_ID: parent} if parent else {})}
    metrics = [("val_acc", val_acc, 0), ("test_acc", test_acc, 0), ("n_members", float(len(members)), 0),
               *((key, float(value), 0) for key, value in cost.items())]
    run_id = tracker.record_run(run_name=f"{kind}-{dataset.key}", tags=tags, params=params, metrics=metrics,
                                state="COMPLETE", start_ms=start_ms, end_ms=int(time.time() * 1000))
    model_id = log_classifier(tracker, run_id, network=classifier.network(), bundle=bundle,
                              test_images=data.test.images, val_acc=val_acc, test_acc=test_acc,
                              tags={KIND: kind, STUDY: spec.name, DATASET: dataset.key, MEMBERS: trials}, params=params)
    name = spec.registered_model_name(dataset)
    current = champion(uri, name)
    score = single_score(val_acc, recorded_score(current) if current is not None else None)
    version_tags = {KIND: kind, MEMBERS: trials, "val_acc": repr(val_acc), "test_acc": repr(test_acc),
                    **score_tags(score), RUN_ID: run_id, VERSION: tl_bench.__version__,
                    **{key: repr(float(value)) for key, value in cost.items()}}
    description = (f"A {kind} of trials {trials} of study {spec.name!r} on {dataset.key}"
                   f"{f' ({detail})' if detail else ''}: val_acc {val_acc:.4f}, test_acc {test_acc:.4f}.")
    registered = register_version(uri, name, model_id=model_id, run_id=run_id, tags=version_tags,
                                  description=description, alias=None)
    route = publish_report(uri, get_version(uri, name, registered.version), evaluation)
    decision = gate_version(uri, name, registered.version, rule=spec.promote.rule, score=score,
                            val=evaluation.val.frame())
    return CombinedOutcome(kind, dataset.key, name, run_id, registered.version, list(members), val_acc, test_acc,
                           cost, decision, report_uri(uri, run_id), route, headline(evaluation.report), detail)


__all__ = ["CombinedOutcome", "record_combined"]
