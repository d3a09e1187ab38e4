"""Screen a dataset's (backbone, weights) candidates: score each from its frozen features, rank them,
keep the best few, and record the scores (an MLflow run; the Optuna study keeps them too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import tl_bench
from tl_bench.config import TrialConfig
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.screen.features import pooled_features
from tl_bench.screen.scores import knn_accuracy, logme
from tl_bench.tracking import DATASET, KIND, KIND_SCREEN, STUDY, VERSION, Tracker
from tl_bench.train import FeatureCache

SEP = "|"  # candidate keys: "<backbone>|<weights>", as in the grid sampler's combinations


@dataclass(frozen=True)
class Candidate:
    backbone: str
    weights: str
    logme: float
    knn: float
    seconds: float  # feature extraction (or cache read) and scoring

    @property
    def key(self) -> str:
        return f"{self.backbone}{SEP}{self.weights}"

    def score(self, name: str) -> float:
        return self.logme if name == "logme" else self.knn


def candidates_of(spec: StudySpec) -> list[tuple[str, str]]:
    """Every (backbone, weights) pair the spec searches, in the spec's order."""
    return [(b.name, w) for b in spec.space.backbones for w in b.weights]


def screen_dataset(
    spec: StudySpec,
    *,
    config_for: Callable[[str, str], TrialConfig],
    cache: FeatureCache,
    score: str = "logme",
) -> list[Candidate]:
    """Score every candidate (LogME on the training split, k-NN on validation), best ``score`` first.

    ``config_for(backbone, weights)`` is the candidate's linear probe (whole backbone frozen,
    ``gap`` neck) on the dataset, so its features are the ones that probe caches.
    """
    out = []
    for backbone, weights in candidates_of(spec):
        start = time.perf_counter()
        feats = pooled_features(config_for(backbone, weights), cache)
        (train_x, train_y), (val_x, val_y) = feats["train"], feats["val"]
        out.append(Candidate(backbone, weights, logme(train_x, train_y), knn_accuracy(train_x, train_y, val_x, val_y),
                             time.perf_counter() - start))
    return sorted(out, key=lambda c: -c.score(score))


def kept(candidates: list[Candidate], keep: int | None) -> tuple[list[Candidate], list[Candidate]]:
    """The first ``keep`` of ranked ``candidates`` and the rest (all kept when ``keep`` is None)."""
    return (candidates, []) if keep is None else (candidates[:keep], candidates[keep:])


def record_screening(
    tracker: Tracker, spec: StudySpec, dataset: DatasetSpec, candidates: list[Candidate], *, score: str,
    keep: int | None, start_ms: int,
) -> str:
    """One MLflow run of kind ``screen``: a metric per candidate and score, the ranking as params."""
    if not tracker.enabled:
        return ""
    kept_now, dropped = kept(candidates, keep)
    metrics = [(f"{name}/{c.backbone}/{c.weights}".replace("|", "/"), c.score(name), 0)
               for c in candidates for name in ("logme", "knn")]
    params = {"score": score, "keep": str(keep), "kept": ", ".join(c.key for c in kept_now)[:6000],
              "dropped": ", ".join(c.key for c in dropped)[:6000] or "none"}
    tags = {KIND: KIND_SCREEN, STUDY: spec.name, DATASET: dataset.key, VERSION: tl_bench.__version__}
    return tracker.record_run(run_name=f"screen-{dataset.key}", tags=tags, params=params, metrics=metrics,
                              state="COMPLETE", start_ms=start_ms, end_ms=int(time.time() * 1000))


def as_records(candidates: list[Candidate]) -> list[dict[str, object]]:
    return [{**asdict(c), "rank": i + 1} for i, c in enumerate(candidates)]


__all__ = ["Candidate", "SEP", "as_records", "candidates_of", "kept", "record_screening", "screen_dataset"]
