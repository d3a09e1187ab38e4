"""``tl-bench soup``: a greedy (or uniform) soup of a study's kept models that share a start.

Ingredients are kept models (the best seeds of the study's ``keep_models.top_k`` first
settings) fine-tuned from one start: the same ``SOUP_KEY`` fields (backbone, weights,
adaptation, neck, head) and, for ``scratch`` weights, the same seed (a random start is the
seed's). Their state dicts must also match key for key and shape for shape. The group of the
best kept model by validation accuracy is the one souped. ``evaluation.greedy_soup`` adds
ingredients best first and keeps one only when validation accuracy does not drop, so the soup
is never worse on validation than its best ingredient (and, having been chosen on it, its
validation accuracy is optimistic, as any selected model's is). The soup is one model of the
first ingredient's architecture: it is logged and served as a trial's model is.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch

from tl_bench.champion import load_classifier
from tl_bench.champion.classifier import LogitNetwork
from tl_bench.champion.version_report import predict_split
from tl_bench.combine.members import MIN_MEMBERS, Member, kept_members, too_few
from tl_bench.combine.record import CombinedOutcome, record_combined
from tl_bench.config import TrialConfig, Weights
from tl_bench.data import load_dataset_for
from tl_bench.evaluation import SoupError, check_ingredients, greedy_soup
from tl_bench.models import InferenceNetwork, save_bundle
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.tracking import config_params
from tl_bench.tracking.evaluation_record import KIND_SOUP

SOUP_KEY = ("backbone", "weights", "adaptation", "neck", "head")


def start_of(config: TrialConfig) -> tuple[object, ...]:
    """What models must share to be souped: ``SOUP_KEY``, and the seed of a scratch start."""
    key = tuple(getattr(config, field) for field in SOUP_KEY)
    return (*key, config.seed) if Weights.parse(config.weights).kind == "scratch" else key


def ingredients(members: list[Member]) -> list[Member]:
    """The members that share the first one's start and state dict layout, in order."""
    if not members:
        return []
    first = members[0]
    reference = first.bundle.model.state_dict()
    group = [first]
    for other in members[1:]:
        if start_of(other.bundle.config) != start_of(first.bundle.config):
            continue
        try:
            check_ingredients([reference, other.bundle.model.state_dict()])
        except SoupError:
            continue
        group.append(other)
    return group


def make_soup(spec: StudySpec, dataset: DatasetSpec, *, top_k: int | None = None, uniform: bool = False) -> CombinedOutcome:
    """Soup the kept models of ``spec`` on ``dataset`` (the first ``top_k`` by validation accuracy) and
    record it (``record_combined``); OutputError in one line with fewer than two compatible models."""
    start_ms = int(time.time() * 1000)
    kept = kept_members(spec, dataset)
    group = ingredients(kept[:top_k] if top_k is not None else kept)
    if len(group) < MIN_MEMBERS:
        raise too_few(spec, dataset, "a soup (models of one start: " + ", ".join(SOUP_KEY) + ")", len(group), len(kept))
    first = group[0].bundle
    interpolation = str(first.preprocessing["interpolation"])
    data = load_dataset_for(first.config, interpolation=interpolation)
    work = copy.deepcopy(first.model).eval()
    net = LogitNetwork(InferenceNetwork(work, first.preprocessing["mean"], first.preprocessing["std"]))

    def val_accuracy(state: dict[str, torch.Tensor]) -> float:
        work.load_state_dict(state, strict=True)
        return predict_split(net, data.val.images, data.val.labels, data.val.ids).accuracy

    soup = greedy_soup([m.bundle.model.state_dict() for m in group], val_accuracy, uniform=uniform)
    work.load_state_dict(soup.state_dict, strict=True)
    used = [group[i].kept.trial for i in soup.ingredients]
    how = "uniform" if uniform else "greedy"
    detail = f"{how}, {len(used)} of {len(group)} candidates"
    facts = {"study": spec.name, "dataset": dataset.key, "soup": how, "members": used,
             "candidate_trials": [m.kept.trial for m in group], "candidate_val_accs": list(soup.candidate_scores)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_bundle(work, Path(tmp) / "bundle", config=first.config, class_names=first.class_names,
                             interpolation=interpolation, extra=facts)
        classifier = load_classifier(folder)  # what is logged is what is evaluated
        params = {**config_params(first.config), "soup": how, "soup_candidates": ",".join(str(m.kept.trial) for m in group)}
        return record_combined(spec, dataset, kind=KIND_SOUP, classifier=classifier, bundle=folder, members=used,
                               params=params, start_ms=start_ms, detail=detail)


__all__ = ["SOUP_KEY", "ingredients", "make_soup", "start_of"]
