"""``tl-bench ensemble``: the mean of the logits of a study's first kept models, served as one model.

Members are the kept models best by validation accuracy (any architectures: each normalises
its input as it was trained to); images are resized once, with the first member's
interpolation. The ensemble is written in its own small format (``champion.classifier``: one
``config.json`` listing the members' cards, one ``model.safetensors``), logged with a network
that MLflow serves like a trial's, and costs what its members cost together.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tl_bench.champion import ensemble_of, load_classifier, save_classifier
from tl_bench.combine.members import MIN_MEMBERS, kept_members, too_few
from tl_bench.combine.record import CombinedOutcome, record_combined
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.tracking.evaluation_record import KIND_ENSEMBLE


def make_ensemble(spec: StudySpec, dataset: DatasetSpec, *, top_k: int | None = None) -> CombinedOutcome:
    """Ensemble the first ``top_k`` kept models of ``spec`` on ``dataset`` (all kept ones by default) and
    record it (``record_combined``); OutputError in one line with fewer than two kept models."""
    start_ms = int(time.time() * 1000)
    kept = kept_members(spec, dataset)
    members = kept[:top_k] if top_k is not None else kept
    if len(members) < MIN_MEMBERS:
        raise too_few(spec, dataset, "an ensemble", len(members), len(kept))
    trials = [m.kept.trial for m in members]
    interpolation = str(members[0].bundle.preprocessing["interpolation"])
    facts = {"study": spec.name, "dataset": dataset.key, "members_trials": trials,
             "members_val_accs": [m.kept.val_acc for m in members]}
    built = ensemble_of([m.bundle for m in members], interpolation=interpolation, extra=facts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_classifier(built, Path(tmp) / "bundle")
        classifier = load_classifier(folder)  # what is logged is what is evaluated
        params = {"members": ",".join(str(t) for t in trials), "n_members": str(len(trials)),
                  "combine": "mean of logits", "interpolation": interpolation,
                  "backbones": ",".join(sorted({m.bundle.config.backbone for m in members}))}
        return record_combined(spec, dataset, kind=KIND_ENSEMBLE, classifier=classifier, bundle=folder,
                               members=trials, params=params, start_ms=start_ms, detail=f"{len(trials)} members")


__all__ = ["make_ensemble"]
