"""The kept models a soup or an ensemble is made of: read back from MLflow, best validation first."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tl_bench.champion import load_classifier
from tl_bench.errors import OutputError
from tl_bench.models import Bundle
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.tracking.evaluation_record import download_model_files
from tl_bench.tracking.logged_models import KeptModel, find_models

MIN_MEMBERS = 2


@dataclass
class Member:
    """A kept trial's model, rebuilt (``bundle``), with what its logged model says (``kept``)."""

    kept: KeptModel
    bundle: Bundle


def kept_members(spec: StudySpec, dataset: DatasetSpec) -> list[Member]:
    """The kept models of the study on ``dataset``, best validation accuracy first (then the earlier trial)."""
    kept = find_models(str(spec.tracking_uri), dataset=dataset.key, study=spec.name)
    kept.sort(key=lambda k: (-k.val_acc if not math.isnan(k.val_acc) else math.inf, k.trial))
    members = []
    for model in kept:
        with tempfile.TemporaryDirectory() as tmp:
            classifier = load_classifier(download_model_files(str(spec.tracking_uri), f"models:/{model.model_id}",
                                                              Path(tmp)))
        members.append(Member(model, classifier.members[0]))
    return members


def too_few(spec: StudySpec, dataset: DatasetSpec, what: str, found: int, kept: int) -> OutputError:
    """The one-line error of a soup or an ensemble with fewer than ``MIN_MEMBERS`` models to combine."""
    return OutputError(
        f"{what} needs at least {MIN_MEMBERS} kept models; study {spec.name!r} on {dataset.key!r} has {found} "
        f"(of {kept} kept, keep_models: {spec.keep_models.label})",
        f"keep_models: {{top_k: K}} with K >= {MIN_MEMBERS} in {spec.source_path.name}, then `tl-bench run` again",
        lead="; use ")


__all__ = ["MIN_MEMBERS", "Member", "kept_members", "too_few"]
