"""The ensemble's file format and the gate's registry-side rules, without a store: tiny real models."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from tl_bench.champion import ensemble_of, load_classifier, save_classifier
from tl_bench.champion.classifier import LogitNetwork
from tl_bench.champion.promotion import judge, paired, recorded_score, seed_spread, single_score
from tl_bench.config import TrialConfig
from tl_bench.evaluation import SettingScore
from tl_bench.models import load_bundle, save_bundle
from tl_bench.models.model import build_model_for

CLASSES = [f"c{i}" for i in range(4)]


def _bundle(folder: Path, backbone: str, seed: int):  # type: ignore[no-untyped-def]
    config = TrialConfig(dataset="digits", img_size=32, backbone=backbone, freeze_depth="all", seed=seed)
    torch.manual_seed(seed)
    model = build_model_for(config, len(CLASSES), load_weights=False)
    return load_bundle(save_bundle(model, folder, config=config, class_names=CLASSES, interpolation="bilinear",
                                   extra={"trial": seed}))


def test_an_ensemble_of_two_architectures_round_trips_its_files_and_averages_logits(tmp_path: Path) -> None:
    members = [_bundle(tmp_path / "a", "test_resnet", 0), _bundle(tmp_path / "b", "test_vit", 1)]
    built = ensemble_of(members, interpolation="bilinear", extra={"members_trials": [0, 1]})
    loaded = load_classifier(save_classifier(built, tmp_path / "ensemble"))
    assert loaded.is_ensemble and loaded.class_names == CLASSES and loaded.card["members_trials"] == [0, 1]
    assert [b.config.backbone for b in loaded.members] == ["test_resnet", "test_vit"]
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        each = [LogitNetwork(b.network())(images) for b in members]
        mean = loaded.logit_network()(images)
        probs = loaded.network()(images)
    assert torch.allclose(mean, (each[0] + each[1]) / 2, atol=1e-5)
    assert torch.allclose(probs, torch.softmax(mean, dim=1), atol=1e-6)
    single = [b.model for b in members]
    assert loaded.cost()["params_total"] == sum(sum(p.numel() for p in m.parameters()) for m in single)


def test_a_single_bundle_loads_as_a_classifier_whose_network_is_the_served_one(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "a", "test_resnet", 0)
    loaded = load_classifier(tmp_path / "a")
    assert not loaded.is_ensemble and loaded.class_names == CLASSES
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(loaded.network()(images), bundle.network()(images))
        assert torch.allclose(torch.softmax(loaded.logit_network()(images), 1), bundle.network()(images), atol=1e-6)


def _version(**tags: str) -> SimpleNamespace:
    return SimpleNamespace(name="m", version="1", run_id="r", tags=tags, description="")


def test_recorded_scores_and_the_spread_a_single_measurement_borrows() -> None:
    assert recorded_score(_version()) is None
    assert recorded_score(_version(val_acc="0.7")) == SettingScore(0.7, 1, 0.7)
    pool = SettingScore.of_seeds([0.80, 0.84, 0.82])
    tagged = _version(setting_val_acc_mean=repr(pool.val_acc), setting_n_seeds="3",
                      setting_val_acc_lcb=repr(pool.val_acc_lcb))
    assert recorded_score(tagged) == pool
    assert seed_spread(pool) == pytest.approx(0.02)  # the three seeds' standard deviation
    assert single_score(0.9, pool) == SettingScore(0.9, 1, pytest.approx(0.9 - 1.645 * 0.02))
    assert single_score(0.9, None).val_acc_lcb == 0.9


def test_paired_records_are_matched_by_image_id_and_other_images_keep_the_champion() -> None:
    challenger = pd.DataFrame({"id": ["b", "a", "c"], "correct": [True, True, False]})
    champion = pd.DataFrame({"id": ["a", "b", "c"], "correct": [False, True, False]})
    a, b = paired(challenger, champion)  # type: ignore[misc]
    assert a.tolist() == [True, True, False] and b.tolist() == [False, True, False]
    other = pd.DataFrame({"id": ["a", "b", "d"], "correct": [True, True, True]})
    decision = judge("paired_bootstrap", challenger_score=SettingScore(0.9, 1, 0.9), challenger_val=challenger,
                     champion_version=_version(val_acc="0.5"), champion_val=lambda: other)  # type: ignore[arg-type]
    assert not decision.promote and "validated on other images (2 of 3 shared)" in decision.reason


def test_lcb_against_a_champion_without_a_score_keeps_the_champion() -> None:
    decision = judge("lcb", challenger_score=SettingScore(0.9, 3, 0.88), challenger_val=None,
                     champion_version=_version(), champion_val=pd.DataFrame)  # type: ignore[arg-type]
    assert not decision.promote and "records no validation score" in decision.reason
    first = judge("lcb", challenger_score=SettingScore(0.9, 3, 0.88), challenger_val=None, champion_version=None,
                  champion_val=pd.DataFrame)
    assert first.promote and first.reason == "lcb: no champion yet -> promote"
