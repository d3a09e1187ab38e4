"""Which trials keep their model, and the study winner's place in the MLflow Model Registry.

The spec's ``keep_models.top_k`` complete trials of a dataset study hold an
MLflow model, ranked as the study summary ranks its best trial (validation
accuracy, the earlier trial on ties). A trial that enters the top logs its
model as it finishes; the model it pushes out is deleted, files and all, so a
study of any length keeps at most ``top_k`` models (plus the versions the
registry holds: a registered model is the registry's to delete). Pruned and
failed trials never reach this.

When a dataset study ends, its best trial's model becomes a version of
``<study>-<dataset>`` (only when no version holds it yet) and the ``champion``
alias points to it.
"""

from __future__ import annotations

import io
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState
from PIL import Image

import tl_bench
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.models import InferenceNetwork, save_bundle
from tl_bench.models.bundle import preprocessing_of
from tl_bench.spec import StudySpec
from tl_bench.study.summary import best_trial
from tl_bench.tracking import DATASET, MODEL_ID, OPTUNA_STUDY, RUN_ID, STUDY, TRIAL, VERSION, Tracker, config_params
from tl_bench.tracking import models as tracked
from tl_bench.tracking import registry
from tl_bench.train import TrainedModel


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class ModelKeeper:
    """Keeps the models of one dataset study's top trials in its MLflow experiment."""

    top_k: int
    tracker: Tracker
    study: optuna.Study
    spec_name: str
    dataset: str

    @property
    def _uri(self) -> str:
        return str(self.tracker.tracking_uri)

    def _scores(self) -> dict[int, float]:
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return {t.number: float(t.values[0]) for t in complete}

    def _top(self, numbers: set[int], scores: dict[int, float]) -> list[int]:
        ranked = sorted(numbers, key=lambda n: (-scores.get(n, float("-inf")), n))
        return [n for n in ranked if n in scores][: self.top_k]

    def keep(self, number: int, run_id: str, config: TrialConfig, result: TrialResult, trained: TrainedModel) -> str | None:
        """Log the model of complete trial ``number`` when it ranks in the top; returns its model id."""
        kept = tracked.kept_models(self._uri, self.tracker.experiment_id, self.study.study_name)
        scores = self._scores()
        if number not in self._top(set(kept) | {number}, scores):
            return None
        model_id = self._log(number, run_id, config, result, trained)
        self.prune(scores)
        return model_id

    def prune(self, scores: dict[int, float] | None = None) -> list[int]:
        """Delete the models of trials outside the top (registered ones stay); returns their trial numbers."""
        scores = self._scores() if scores is None else scores
        kept = tracked.kept_models(self._uri, self.tracker.experiment_id, self.study.study_name)
        top = set(self._top(set(kept), scores))
        dropped = []
        for number, model in sorted(kept.items()):
            if number in top or self._registered(model):
                continue
            tracked.delete_model(self._uri, model.model_id)
            dropped.append(number)
        return dropped

    def _registered(self, model: tracked.KeptModel) -> bool:
        versions = registry.registered_versions(self._uri, run_id=model.run_id) if model.run_id else []
        return any(v.tags.get(MODEL_ID) == model.model_id for v in versions)

    def _log(self, number: int, run_id: str, config: TrialConfig, result: TrialResult, trained: TrainedModel) -> str:
        model = trained.model.to("cpu", memory_format=torch.contiguous_format).eval()
        test = trained.data.test.images
        pixels = test[: min(2, len(test))]
        pixels = pixels.repeat(2, 1, 1, 1) if len(pixels) == 1 else pixels  # two, so the batch size stays free
        facts = {"study": self.spec_name, "dataset": self.dataset, "trial": number, "run_id": run_id,
                 "val_acc": result.val_acc, "test_acc": result.test_acc, "tl_bench_version": tl_bench.__version__}
        preprocessing = preprocessing_of(model, trained.interpolation)
        network = InferenceNetwork(model, preprocessing["mean"], preprocessing["std"]).eval()
        tags = {OPTUNA_STUDY: self.study.study_name, STUDY: self.spec_name, DATASET: self.dataset,
                TRIAL: str(number), VERSION: tl_bench.__version__,
                "val_acc": repr(float(result.val_acc)), "test_acc": repr(float(result.test_acc))}
        with tempfile.TemporaryDirectory() as tmp:
            bundle = save_bundle(model, Path(tmp), config=config, class_names=list(trained.data.class_names),
                                 interpolation=trained.interpolation, extra=facts)
            return tracked.log_trial_model(
                self._uri, self.tracker.experiment_id, run_id, network=network, bundle_dir=bundle,
                pixels=pixels.numpy(), encoded=[_png(image) for image in pixels], tags=tags,
                params=config_params(config),
            )


def keeper_for(spec: StudySpec, study: optuna.Study, tracker: Tracker, dataset: str) -> ModelKeeper | None:
    """The study's keeper; None when no model is kept (``keep_models: none``, tracking off)."""
    if spec.keep_models.top_k == 0 or not tracker.enabled:
        return None
    return ModelKeeper(spec.keep_models.top_k, tracker, study, spec.name, dataset)


def publish_champion(spec: StudySpec, tracker: Tracker, study: optuna.Study, dataset: str) -> registry.Registered | None:
    """Settle the kept models, then register the best trial's model as ``<study>-<dataset>`` (a new
    version only when it changed) with the ``champion`` alias; None when it holds no model."""
    keeper = keeper_for(spec, study, tracker, dataset)
    if keeper is None:
        return None
    keeper.prune()  # workers that finished together may each have kept one
    best = best_trial(study)
    kept = tracked.kept_models(str(tracker.tracking_uri), tracker.experiment_id, study.study_name)
    if best is None or best.number not in kept:
        return None
    model = kept[best.number]
    tags = {TRIAL: str(best.number), "val_acc": repr(float(best.values[0])),
            "test_acc": repr(float(best.user_attrs.get("test_acc", float("nan")))),
            RUN_ID: model.run_id, VERSION: tl_bench.__version__}
    return registry.register_champion(
        str(tracker.tracking_uri), spec.registered_model_name(dataset), model_id=model.model_id,
        run_id=model.run_id, tags=tags, description=f"The best trial of study {spec.name!r} on {dataset}.",
    )


def warn(what: str, err: BaseException) -> None:
    """One line on stderr: keeping or registering a model never fails a trial or a study."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    sys.stderr.write(f"warning: {what}: {type(err).__name__}: {first}\n")


__all__ = ["ModelKeeper", "keeper_for", "publish_champion", "warn"]
