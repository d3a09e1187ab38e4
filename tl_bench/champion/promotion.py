"""The promotion gate applied to the registry: whether a new version takes ``champion`` from the current one.

Every version that is judged gets the gate's answer as tags (``promotion_rule``, ``promoted``,
``promotion_reason``) and an alias: ``champion`` when promoted, else ``challenger``. The rule is
the study file's ``promote.rule`` (``tl_bench.evaluation.gate``):

- ``lcb`` compares the challenger's score with the champion's recorded one (the tags
  ``setting_val_acc_mean``, ``setting_n_seeds``, ``setting_val_acc_lcb`` a study writes on its
  versions and refreshes on its champion). A soup or an ensemble is one measurement: its bound
  is its validation accuracy less the study's seed spread (``single_score``).
- ``paired_bootstrap`` reads both versions' per-image validation records
  (``evaluation/val_predictions.csv``), paired by image id; a champion without one is evaluated
  first. Records of different validation images cannot be paired: the champion stays.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from tl_bench.champion.version_report import RegisteredVersion, validation_record
from tl_bench.evaluation import Decision, Evidence, SettingScore, decide
from tl_bench.ranking import LCB_Z
from tl_bench.tracking.evaluation_record import PROMOTED, PROMOTION_REASON, PROMOTION_RULE
from tl_bench.tracking.model_registry import champion, describe_version, set_alias
from tl_bench.tracking.names import CHALLENGER, CHAMPION

SCORE_TAGS = ("setting_val_acc_mean", "setting_n_seeds", "setting_val_acc_lcb")


def score_tags(score: SettingScore) -> dict[str, str]:
    """The version tags that record a score (read back by ``recorded_score``)."""
    return dict(zip(SCORE_TAGS, (repr(float(score.val_acc)), str(int(score.n_seeds)), repr(float(score.val_acc_lcb)))))


def recorded_score(version: RegisteredVersion) -> SettingScore | None:
    """The score a version records; a version with only ``val_acc`` counts as one seed."""
    tags = version.tags
    try:
        if all(key in tags for key in SCORE_TAGS):
            return SettingScore(float(tags[SCORE_TAGS[0]]), int(tags[SCORE_TAGS[1]]), float(tags[SCORE_TAGS[2]]))
        value = float(tags["val_acc"])
    except (KeyError, ValueError):
        return None
    return SettingScore(value, 1, value) if math.isfinite(value) else None


def seed_spread(score: SettingScore | None) -> float:
    """The seed-to-seed standard deviation a score's bound was computed with (0 without one)."""
    if score is None or score.n_seeds < 1 or not math.isfinite(score.val_acc - score.val_acc_lcb):
        return 0.0
    return max(0.0, (score.val_acc - score.val_acc_lcb) * math.sqrt(score.n_seeds) / LCB_Z)


def single_score(val_acc: float, pool: SettingScore | None) -> SettingScore:
    """The score of one measurement (a soup, an ensemble): its bound borrows the spread of ``pool``
    (the champion's score), as a one-seed setting's bound borrows its study's pooled spread."""
    return SettingScore(float(val_acc), 1, float(val_acc) - LCB_Z * seed_spread(pool))


def paired(challenger: pd.DataFrame, champion_record: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | str:
    """Both records' correctness on the same images, in one order; or why they cannot be paired."""
    a = challenger.drop_duplicates("id").set_index("id")["correct"]
    b = champion_record.drop_duplicates("id").set_index("id")["correct"]
    if set(a.index) != set(b.index):
        shared = len(set(a.index) & set(b.index))
        return (f"the champion was validated on other images ({shared} of {len(a)} shared), so the two cannot be "
                "paired")
    order = sorted(a.index)
    return a.loc[order].astype(bool).to_numpy(), b.loc[order].astype(bool).to_numpy()


def judge(
    rule: str,
    *,
    challenger_score: SettingScore,
    challenger_val: pd.DataFrame | None,
    champion_version: RegisteredVersion | None,
    champion_val: Callable[[], pd.DataFrame],
) -> Decision:
    """The gate's answer for a challenger against ``champion_version`` (None: no champion yet);
    ``champion_val`` is called only when the rule needs the champion's validation record."""
    if champion_version is None or rule != "paired_bootstrap":
        champion_score = recorded_score(champion_version) if champion_version is not None else None
        if champion_version is not None and champion_score is None and rule == "lcb":
            return Decision(False, rule, "lcb: the champion records no validation score to compare with -> keep the "
                                         "champion")
        return decide(rule, Evidence(challenger=challenger_score, champion=champion_score))
    if challenger_val is None:
        return Decision(False, rule, "paired_bootstrap: the challenger has no per-image validation record -> keep "
                                     "the champion")
    pairs = paired(challenger_val, champion_val())
    if isinstance(pairs, str):
        return Decision(False, rule, f"paired_bootstrap: {pairs} -> keep the champion")
    return decide(rule, Evidence(challenger_correct=pairs[0], champion_correct=pairs[1]))


def settle(tracking_uri: str, name: str, version: str, decision: Decision) -> None:
    """Write the decision on the version and point ``champion`` (promoted) or ``challenger`` at it."""
    describe_version(tracking_uri, name, version, tags={
        PROMOTION_RULE: decision.rule, PROMOTED: str(decision.promote).lower(), PROMOTION_REASON: decision.reason})
    set_alias(tracking_uri, name, CHAMPION if decision.promote else CHALLENGER, version)


def gate_version(
    tracking_uri: str, name: str, version: str, *, rule: str, score: SettingScore, val: pd.DataFrame | None
) -> Decision:
    """Judge version ``version`` of ``name`` against the current champion and settle it; a version
    that already is the champion stays so, unjudged."""
    current = champion(tracking_uri, name)
    if current is not None and str(current.version) == version:
        return Decision(True, rule, current.tags.get(PROMOTION_REASON, "already the champion"))
    decision = judge(rule, challenger_score=score, challenger_val=val, champion_version=current,
                     champion_val=lambda: validation_record(tracking_uri, current))
    settle(tracking_uri, name, version, decision)
    return decision


__all__ = ["SCORE_TAGS", "gate_version", "judge", "paired", "recorded_score", "score_tags", "seed_spread", "settle",
           "single_score"]
