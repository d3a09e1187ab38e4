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
with its evaluation report logged on its trial run (``tl_bench.champion``).
The ``champion`` alias moves to it only when the promotion gate (the study
file's ``promote.rule``) says the evidence is better than the champion's;
otherwise it gets ``challenger``, and the version's tags say why either way.
Before it ranks, the models dead workers left PENDING are finished or removed
(``study.pending``); a first setting left without a model is said, not passed over.
Kept models carry their study's ``tlb.optuna_study_id``, so a namesake deleted with
Optuna lends this study none of its models.
"""

from __future__ import annotations

import io
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from PIL import Image
from torch import nn

import tl_bench
from tl_bench.champion import gate_version, recorded_score, report_version, score_tags
from tl_bench.champion.description import SeedRun, version_description
from tl_bench.champion.version_report import RegisteredVersion
from tl_bench.config import TrialConfig, TrialResult
from tl_bench.crash_points import crash_point
from tl_bench.data import LazyImages
from tl_bench.errors import warn
from tl_bench.evaluation import SettingScore
from tl_bench.models import InferenceNetwork, merged_adapters, save_bundle
from tl_bench.models.accounting import adapter_state
from tl_bench.models.bundle import preprocessing_of
from tl_bench.spec import StudySpec
from tl_bench.study.ranked import SEED_PARAM, RankedSetting, ranked_settings, setting_of, setting_seeds, top_trials
from tl_bench.study.pending import abandoned_models, settle
from tl_bench.study.storage import RUN_ATTR, optuna_study_id
from tl_bench.study.summary import best_trial
from tl_bench.tracking import (
    DATASET,
    KIND,
    MODEL_ID,
    OPTUNA_STUDY,
    OPTUNA_STUDY_ID,
    RUN_ID,
    STUDY,
    TRIAL,
    VERSION,
    Tracker,
    config_params,
)
from tl_bench.tracking import logged_models as tracked
from tl_bench.tracking import model_registry
from tl_bench.tracking.evaluation_record import REPORT_LINK, read_val_predictions
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
        kept = tracked.kept_models(self._uri, self.tracker.experiment_id, self.study.study_name,
                                   optuna_study_id(self.study))
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
                         spec_name=self.spec_name, dataset=self.dataset, trial=number,
                         optuna_study_id=optuna_study_id(self.study))


def log_model(
    tracker: Tracker, run_id: str, config: TrialConfig, result: TrialResult, trained: TrainedModel, *,
    optuna_study: str | None, spec_name: str, dataset: str, trial: int, extra_tags: dict[str, str] | None = None,
    optuna_study_id: str = "",
) -> str:
    """Log ``trained`` as the MLflow model of run ``run_id`` (its preprocessing and two test images with it);
    returns the model id. ``trial`` is the study trial the model comes from; without ``optuna_study`` the
    model is no kept model of that study's trials (a refit's)."""
    adapter = adapter_state(trained.model.to("cpu"), bn_recalibrated=result.bn_recalibrated > 0)
    # served merged: LoRA and IA3 folded into the base layers cost nothing at inference
    model = merged_adapters(trained.model).to("cpu", memory_format=torch.contiguous_format).eval()
    facts = {"study": spec_name, "dataset": dataset, "trial": trial, "run_id": run_id,
             "val_acc": result.val_acc, "test_acc": result.test_acc, "tl_bench_version": tl_bench.__version__}
    preprocessing = preprocessing_of(model, trained.interpolation)
    network = InferenceNetwork(model, preprocessing["mean"], preprocessing["std"]).eval()
    tags = {STUDY: spec_name, DATASET: dataset, TRIAL: str(trial), **(extra_tags or {})}
    if optuna_study is not None:
        tags[OPTUNA_STUDY] = optuna_study
    if optuna_study_id:
        tags[OPTUNA_STUDY_ID] = optuna_study_id
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(model, Path(tmp) / "bundle", config=config, class_names=list(trained.data.class_names),
                             interpolation=trained.interpolation, extra=facts)
        model_id = log_classifier(tracker, run_id, network=network, bundle=bundle, test_images=trained.data.test.images,
                                  val_acc=result.val_acc, test_acc=result.test_acc, tags=tags, params=config_params(config))
        tracked.log_adapter(str(tracker.tracking_uri), run_id, adapter, Path(tmp))
        return model_id


def log_classifier(
    tracker: Tracker, run_id: str, *, network: nn.Module, bundle: Path, test_images: torch.Tensor | LazyImages,
    val_acc: float, test_acc: float, tags: dict[str, str], params: dict[str, str],
) -> str:
    """Log a served network (uint8 images in, probabilities out) and its files (``bundle``: config.json and
    model.safetensors of a model, a soup or an ensemble) as the MLflow model of run ``run_id``, with two test
    images as its example; returns the model id."""
    pixels = test_images[: min(2, len(test_images))]
    pixels = pixels.repeat(2, 1, 1, 1) if len(pixels) == 1 else pixels  # two, so the batch size stays free
    tags = {VERSION: tl_bench.__version__, "val_acc": repr(float(val_acc)), "test_acc": repr(float(test_acc)), **tags}
    return tracked.log_trial_model(
        str(tracker.tracking_uri), tracker.experiment_id, run_id, network=network.eval(), bundle_dir=bundle,
        pixels=pixels.numpy(), encoded=[_png(image) for image in pixels], tags=tags, params=params,
    )


def keeper_for(spec: StudySpec, study: optuna.Study, tracker: Tracker, dataset: str) -> ModelKeeper | None:
    """The study's keeper; None when no model is kept (``keep_models: none``, tracking off)."""
    if spec.keep_models.top_k == 0 or not tracker.enabled:
        return None
    return ModelKeeper(spec.keep_models.top_k, tracker, study, spec.name, dataset)


def publish_champion(
    spec: StudySpec, tracker: Tracker, study: optuna.Study, dataset: str
) -> model_registry.Registered | None:
    """Settle the kept models, then register the first setting's model as a version of ``<study>-<dataset>``
    (a new version only when it changed), report on it and let the promotion gate decide whether it becomes
    ``champion`` (``Registered.moved``) or ``challenger``; None when it holds no model."""
    keeper = keeper_for(spec, study, tracker, dataset)
    if keeper is None:
        return None
    uri = str(tracker.tracking_uri)
    _settle_abandoned(uri, tracker.experiment_id, study)
    keeper.prune()  # workers that finished together may each have kept one
    ranked = ranked_settings(study)
    kept = tracked.kept_models(uri, tracker.experiment_id, study.study_name, optuna_study_id(study))
    if not ranked:
        return None
    if ranked[0].trial not in kept:
        print(f"warning: trial {ranked[0].trial} of {study.study_name}, the first setting's best seed, holds no "
              "model: no version was registered", file=sys.stderr)
        return None
    first = ranked[0]
    best = best_trial(study, ranked)
    model = kept[first.trial]
    name = spec.registered_model_name(dataset)
    current = model_registry.champion(uri, name)
    if current is not None:
        _refresh_score(uri, current, study, ranked)
    score = SettingScore(first.val_acc, first.n_seeds, first.val_acc_lcb)
    tags = {TRIAL: str(first.trial), "val_acc": repr(float(best.values[0])),
            "test_acc": repr(float(best.user_attrs.get("test_acc", float("nan")))),
            **score_tags(score), RUN_ID: model.run_id, VERSION: tl_bench.__version__}
    description = _description(uri, spec.name, dataset, study, first, model, score,
                               float(best.user_attrs.get("test_acc", float("nan"))))
    registered = model_registry.register_version(uri, name, model_id=model.model_id, run_id=model.run_id, tags=tags,
                                                 description=description, alias=None)
    crash_point("version_registered")
    if current is not None and str(current.version) == registered.version:
        return registered  # still the champion: nothing to judge
    if not registered.created:  # judged before: its setting may have gained seeds since
        model_registry.describe_version(uri, name, registered.version, tags=tags, description=description)
    version = model_registry.get_version(uri, name, registered.version)
    val = None
    try:
        if REPORT_LINK in version.tags:
            val = read_val_predictions(uri, model.run_id)
        else:
            val = report_version(uri, version).val.frame()
    except Exception as err:  # the report is an addition: registration and the gate go on without it
        warn(f"the evaluation report of {name} version {registered.version} was not written", err)
    decision = gate_version(uri, name, registered.version, rule=spec.promote.rule, score=score, val=val)
    return model_registry.Registered(name, registered.version, registered.created, decision.promote)


def _description(uri: str, spec_name: str, dataset: str, study: optuna.Study, first: RankedSetting,
                 model: tracked.KeptModel, score: SettingScore, test_acc: float) -> str:
    """The version's description: the setting, its recipe, the bound and the seeds behind it."""
    trials = setting_seeds(study, first.trial)
    seeds = [SeedRun(t.number, str(t.params.get(SEED_PARAM)), float(t.values[0])) for t in trials]
    n_stages = next((t.user_attrs.get("n_stages") for t in trials if t.number == first.trial), None)
    headline = (f"**{spec_name}-{dataset}**: the first setting of study `{spec_name}` on `{dataset}` by the "
                f"leaderboard's rule (validation lcb over seeds); the model is its best seed's, trial {first.trial}.")
    return version_description(headline, tracked.model_params(uri, model.model_id), score=score, seeds=seeds,
                               n_stages=n_stages, test_acc=test_acc, trial=first.trial, run_id=model.run_id,
                               model_id=model.model_id)


def _settle_abandoned(tracking_uri: str, experiment_id: str, study: optuna.Study) -> None:
    """The models dead workers left PENDING (``study.pending``): finished when whole, else removed, saying so."""
    for number, model in abandoned_models(study, tracking_uri, experiment_id):
        if not settle(tracking_uri, experiment_id, model):
            print(f"warning: the model of trial {number} of {study.study_name} was cut short when its process "
                  "stopped, and was removed", file=sys.stderr)


def _refresh_score(tracking_uri: str, champion: RegisteredVersion, study: optuna.Study,
                   ranked: list[RankedSetting]) -> None:
    """Record the champion's setting's current score on it when it is a trial of this study (more seeds
    may have moved its mean since it was registered), so the gate compares with what is known now."""
    tags = champion.tags
    number = tags.get(TRIAL, "")
    if tags.get(KIND) or not number.isdigit():
        return  # a refit, a soup or an ensemble: its recorded score is its own
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == int(number)), None)
    if trial is None or (RUN_ID in tags and trial.user_attrs.get(RUN_ATTR) != tags[RUN_ID]):
        return  # the trial of a namesake deleted with Optuna, not of this study
    setting = setting_of(study, int(number), ranked)
    if setting is None:
        return
    fresh = score_tags(SettingScore(setting.val_acc, setting.n_seeds, setting.val_acc_lcb))
    recorded = recorded_score(champion)
    if recorded is None or score_tags(recorded) != fresh:
        model_registry.describe_version(tracking_uri, str(champion.name), str(champion.version), tags=fresh)


__all__ = ["ModelKeeper", "keeper_for", "log_classifier", "log_model", "publish_champion"]
