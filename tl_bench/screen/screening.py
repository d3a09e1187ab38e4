"""Screen a dataset's (backbone, weights) candidates: score each from its frozen features, rank them,
keep the best few, and record the scores (an MLflow run; the Optuna study keeps them too).

Beside the scores, each candidate carries the data-free static rankers a score has to beat: its
backbone's parameter count and the probe's forward FLOPs (``STATIC_RANKERS``; bigger ranks higher).
Every weights of one backbone has the same values, so they tie there.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import tl_bench
from tl_bench.config import TrialConfig, Weights
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.screen.features import candidate_features
from tl_bench.screen.scores import SCORES, knn_accuracy, logme
from tl_bench.tracking import DATASET, HOST, KIND, KIND_SCREEN, PID, STUDY, VERSION, Tracker
from tl_bench.train import FeatureCache

SEP = "|"  # candidate keys: "<backbone>|<weights>", as in the grid sampler's combinations
STATIC_RANKERS = ("params", "flops")  # data-free rankings a score must beat to be worth its seconds
RECORDED = SCORES + STATIC_RANKERS  # every value kept per candidate, and what ``Candidate.score`` reads


@dataclass(frozen=True)
class Candidate:
    backbone: str
    weights: str
    logme: float
    knn: float
    seconds: float  # feature extraction (or cache read) and scoring
    rank: int = 0  # by the screening score, 1 = best; equal scores share the rank (1, 1, 3); 0 = not ranked
    tied: bool = False  # another candidate has exactly this score, so neither is ahead
    params: float = math.nan  # the backbone's parameter count (static ranker)
    flops: float = math.nan  # the probe's forward FLOPs per image at the screening input size (static ranker)

    @property
    def key(self) -> str:
        return f"{self.backbone}{SEP}{self.weights}"

    @property
    def label(self) -> str:
        """The key as shown and recorded in MLflow: a checkpoint file by its short label (``Weights.short``)."""
        return f"{self.backbone}{SEP}{Weights.parse(self.weights).short}"

    @property
    def rank_label(self) -> str:
        """The rank as a table shows it: ``1`` or, shared, ``1 (tie)``."""
        return f"{self.rank} (tie)" if self.tied else str(self.rank)

    def score(self, name: str) -> float:
        """The value ``name`` (a score or a static ranker, ``RECORDED``) gave this candidate."""
        if name not in RECORDED:
            raise ValueError(f"no screening value {name!r}; accepted: {', '.join(RECORDED)}")
        return float(getattr(self, name))

    def values(self) -> dict[str, float]:
        """Every score and static value, by name (what the study keeps per candidate)."""
        return {name: self.score(name) for name in RECORDED}


def candidates_of(spec: StudySpec) -> list[tuple[str, str]]:
    """Every (backbone, weights) pair the spec searches, in the spec's order."""
    return [(b.name, w) for b in spec.space.backbones for w in b.weights]


def rank_candidates(candidates: list[Candidate], score: str) -> list[Candidate]:
    """``candidates`` best ``score`` first, each with its rank: candidates with equal scores share
    the best rank among them and are marked tied (ranks 1, 1, 3), so no tie is settled by the order
    the spec happens to list them in (which they keep among themselves); a NaN score ranks last."""
    def value(c: Candidate) -> float:
        s = c.score(score)
        return -math.inf if math.isnan(s) else s

    ordered = sorted(candidates, key=value, reverse=True)  # stable: ties keep the spec's order
    values = [value(c) for c in ordered]
    ranks = [1 + values.index(v) for v in values]
    return [replace(c, rank=r, tied=values.count(v) > 1 and not math.isnan(c.score(score)))
            for c, r, v in zip(ordered, ranks, values)]


def screen_dataset(
    spec: StudySpec,
    *,
    config_for: Callable[[str, str], TrialConfig],
    cache: FeatureCache,
    score: str = "knn",
) -> list[Candidate]:
    """Score every candidate, ranked by ``score`` (``rank_candidates``): LogME of the training split's
    features, and the validation accuracy of a k-NN classifier fitted on the training split's; with
    each its static values (backbone parameters, probe forward FLOPs).

    ``config_for(backbone, weights)`` is the candidate's linear probe (whole backbone frozen,
    ``gap`` neck) on the dataset, so its features are the ones that probe caches.
    """
    out = []
    for backbone, weights in candidates_of(spec):
        start = time.perf_counter()
        feats = candidate_features(config_for(backbone, weights), cache)
        (train_x, train_y), (val_x, val_y) = feats.splits["train"], feats.splits["val"]
        out.append(Candidate(backbone, weights, logme(train_x, train_y), knn_accuracy(train_x, train_y, val_x, val_y),
                             time.perf_counter() - start, params=feats.params, flops=feats.flops))
    return rank_candidates(out, score)


def kept(candidates: list[Candidate], keep: int | None) -> tuple[list[Candidate], list[Candidate]]:
    """The ranked ``candidates`` within the best ``keep`` ranks, and the rest (all kept when ``keep``
    is None). Candidates tied at the cut are kept together: equal scores give no reason to search
    one and drop the other, so a tie can keep more than ``keep``."""
    if keep is None:
        return candidates, []
    if any(c.rank < 1 for c in candidates):
        raise ValueError("kept() needs ranked candidates: pass them through rank_candidates first")
    return [c for c in candidates if c.rank <= keep], [c for c in candidates if c.rank > keep]


def ties(candidates: list[Candidate]) -> list[list[Candidate]]:
    """The groups of ranked ``candidates`` that share a rank, best first."""
    groups: dict[int, list[Candidate]] = {}
    for c in candidates:
        if c.tied:
            groups.setdefault(c.rank, []).append(c)
    return [groups[r] for r in sorted(groups)]


def record_screening(
    tracker: Tracker, spec: StudySpec, dataset: DatasetSpec, candidates: list[Candidate], *, score: str,
    keep: int | None, start_ms: int,
) -> str:
    """One MLflow run of kind ``screen``: a metric per candidate and score or static value
    (``knn/<backbone>/<weights>``, ``params/...``, ``flops/...``; a checkpoint file by its short label,
    its path in the param ``weights_path/<label>``), the ranking as params. The run ends FINISHED, or
    FAILED when a write fails; the writer's host and pid let ``tl-bench doctor`` end one whose
    process died."""
    if not tracker.enabled:
        return ""
    kept_now, dropped = kept(candidates, keep)
    metrics = [(f"{name}/{c.label}".replace(SEP, "/"), c.score(name), 0) for c in candidates for name in RECORDED]
    params = {"score": score, "keep": str(keep), "kept": ", ".join(c.label for c in kept_now)[:6000],
              "dropped": ", ".join(c.label for c in dropped)[:6000] or "none",
              # the candidates ranked first: several when they tie, none of them ahead of the others
              "best": ", ".join(c.label for c in candidates if c.rank == 1)[:6000] or "none",
              "ties": "; ".join(f"rank {g[0].rank}: " + " = ".join(c.label for c in g)
                                for g in ties(candidates))[:6000] or "none"}
    files = {Weights.parse(c.weights) for c in candidates}
    params |= {f"weights_path/{w.short}": w.path[:6000] for w in files if w.kind == "file"}
    tags = {KIND: KIND_SCREEN, STUDY: spec.name, DATASET: dataset.key, VERSION: tl_bench.__version__,
            HOST: socket.gethostname(), PID: str(os.getpid())}
    return tracker.record_run(run_name=f"screen-{dataset.key}", tags=tags, params=params, metrics=metrics,
                              state="COMPLETE", start_ms=start_ms, end_ms=int(time.time() * 1000))


def as_records(candidates: list[Candidate]) -> list[dict[str, object]]:
    """One plain dict per ranked candidate, its ``rank`` and ``tied`` included (for ``--json``)."""
    return [asdict(c) for c in candidates]


__all__ = ["Candidate", "RECORDED", "SEP", "STATIC_RANKERS", "as_records", "candidates_of", "kept", "rank_candidates",
           "record_screening", "screen_dataset", "ties"]
