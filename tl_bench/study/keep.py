"""Which trials keep their model, and the study winner's place in the MLflow Model Registry.

The representative trials (best seed) of a dataset study's ``keep_models.top_k``
first settings hold an MLflow model, the settings ranked by the leaderboard's
rule (``tl_bench.ranking``: the lower bound on mean validation accuracy over
seeds). A trial that enters the top logs its
model as it finishes; the model it pushes out is deleted, files and all, so a
study of any length keeps at most ``top_k`` models (plus the versions the
registry holds: a registered model is the registry's to delete). Pruned and
failed trials never reach this.

When a dataset study ends, the model of its first setting (the first row of
its leaderboard) becomes a version of ``<study>-<dataset>`` (only when no
version holds it yet), tagged with the setting's bound, mean and seed count,
and the ``champion`` alias points to it.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from PIL import Image

import tl_bench
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.models import InferenceNetwork, save_bundle
from tl_bench.models.bundle import preprocessing_of
from tl_bench.spec import StudySpec
from tl_bench.study.ranked import ranked_settings, top_trials
from tl_bench.study.summary import best_trial
from tl_bench.tracking import DATASET, MODEL_ID, OPTUNA_STUDY, RUN_ID, STUDY, TRIAL, VERSION, Tracker, config_params
from tl_bench.tracking import logged_models as tracked
from tl_bench.tracking import model_registry
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

    def keep(self, number: int, run_id: str, config: TrialConfig, result: TrialResult, trained: TrainedModel) -> str | None:
        """Log the model of complete trial ``number`` when it represents a top setting; returns its model id."""
        top = set(top_trials(self.study, self.top_k))
        if number not in top:
            return None
        model_id = self._log(number, run_id, config, result, trained)
        self.prune(top)
        return model_id

    def prune(self, top: set[int] | None = None) -> list[int]:
        """Delete the models of trials outside the top (registered ones stay); returns their trial numbers."""
        top = set(top_trials(self.study, self.top_k)) if top is None else top
        kept = tracked.kept_models(self._uri, self.tracker.experiment_id, self.study.study_name)
        dropped = []
        for number, model in sorted(kept.items()):
            if number in top or self._registered(model):
                continue
            tracked.delete_model(self._uri, model.model_id)
            dropped.append(number)
        return dropped

    def _registered(self, model: tracked.KeptModel) -> bool:
        versions = model_registry.registered_versions(self._uri, run_id=model.run_id) if model.run_id else []
        return any(v.tags.get(MODEL_ID) == model.model_id for v in versions)

    def _log(self, number: int, run_id: str, config: TrialConfig, result: TrialResult, trained: TrainedModel) -> str:
        return log_model(self.tracker, run_id, config, result, trained, optuna_study=self.study.study_name,
                         spec_name=self.spec_name, dataset=self.dataset, trial=number)


def log_model(
    tracker: Tracker, run_id: str, config: TrialConfig, result: TrialResult, trained: TrainedModel, *,
    optuna_study: str | None, spec_name: str, dataset: str, trial: int, extra_tags: dict[str, str] | None = None,
) -> str:
    """Log ``trained`` as the MLflow model of run ``run_id`` (its preprocessing and two test images with it);
    returns the model id. ``trial`` is the study trial the model comes from; without ``optuna_study`` the
    model is no kept model of that study's trials (a refit's)."""
    model = trained.model.to("cpu", memory_format=torch.contiguous_format).eval()
    test = trained.data.test.images
    pixels = test[: min(2, len(test))]
    pixels = pixels.repeat(2, 1, 1, 1) if len(pixels) == 1 else pixels  # two, so the batch size stays free
    facts = {"study": spec_name, "dataset": dataset, "trial": trial, "run_id": run_id,
             "val_acc": result.val_acc, "test_acc": result.test_acc, "tl_bench_version": tl_bench.__version__}
    preprocessing = preprocessing_of(model, trained.interpolation)
    network = InferenceNetwork(model, preprocessing["mean"], preprocessing["std"]).eval()
    tags = {STUDY: spec_name, DATASET: dataset, TRIAL: str(trial), VERSION: tl_bench.__version__,
            "val_acc": repr(float(result.val_acc)), "test_acc": repr(float(result.test_acc)), **(extra_tags or {})}
    if optuna_study is not None:
        tags[OPTUNA_STUDY] = optuna_study
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(model, Path(tmp), config=config, class_names=list(trained.data.class_names),
                             interpolation=trained.interpolation, extra=facts)
        return tracked.log_trial_model(
            str(tracker.tracking_uri), tracker.experiment_id, run_id, network=network, bundle_dir=bundle,
            pixels=pixels.numpy(), encoded=[_png(image) for image in pixels], tags=tags,
            params=config_params(config),
        )


def keeper_for(spec: StudySpec, study: optuna.Study, tracker: Tracker, dataset: str) -> ModelKeeper | None:
    """The study's keeper; None when no model is kept (``keep_models: none``, tracking off)."""
    if spec.keep_models.top_k == 0 or not tracker.enabled:
        return None
    return ModelKeeper(spec.keep_models.top_k, tracker, study, spec.name, dataset)


def publish_champion(
    spec: StudySpec, tracker: Tracker, study: optuna.Study, dataset: str
) -> model_registry.Registered | None:
    """Settle the kept models, then register the best trial's model as ``<study>-<dataset>`` (a new
    version only when it changed) with the ``champion`` alias; None when it holds no model."""
    keeper = keeper_for(spec, study, tracker, dataset)
    if keeper is None:
        return None
    keeper.prune()  # workers that finished together may each have kept one
    ranked = ranked_settings(study)
    kept = tracked.kept_models(str(tracker.tracking_uri), tracker.experiment_id, study.study_name)
    if not ranked or ranked[0].trial not in kept:
        return None
    first = ranked[0]
    best = best_trial(study, ranked)
    model = kept[first.trial]
    tags = {TRIAL: str(first.trial), "val_acc": repr(float(best.values[0])),
            "test_acc": repr(float(best.user_attrs.get("test_acc", float("nan")))),
            "setting_val_acc_lcb": repr(first.val_acc_lcb), "setting_val_acc_mean": repr(first.val_acc),
            "setting_n_seeds": str(first.n_seeds), RUN_ID: model.run_id, VERSION: tl_bench.__version__}
    description = (f"The first setting of study {spec.name!r} on {dataset} by the leaderboard's rule "
                   f"(val_acc lcb {first.val_acc_lcb:.4f}, mean {first.val_acc:.4f} over {first.n_seeds} seed(s)); "
                   f"its best seed, trial {first.trial}.")
    return model_registry.register_version(
        str(tracker.tracking_uri), spec.registered_model_name(dataset), model_id=model.model_id,
        run_id=model.run_id, tags=tags, description=description,
    )


__all__ = ["ModelKeeper", "keeper_for", "log_model", "publish_champion"]
