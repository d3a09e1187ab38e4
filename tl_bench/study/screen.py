"""Screening inside a study: rank the candidates before the search, record what it found, and say
afterwards whether it predicted the search (Kendall's tau between each score and the best
validation accuracy each candidate reached).
"""

from __future__ import annotations

import sys
import time

import optuna
from optuna.trial import TrialState

from tl_bench.screen import SCORES, Candidate, kept, record_screening, screen_dataset
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.study.space import build_config, candidate_of
from tl_bench.study.storage import SCREEN_SCORES
from tl_bench.tracking import SCREEN_DROPPED, Tracker
from tl_bench.train import FeatureCache


def probe_config_for(spec: StudySpec, dataset: DatasetSpec, checkpoint_for):  # type: ignore[no-untyped-def]
    """(backbone, weights) -> the linear probe of that candidate on ``dataset`` (what screening scores)."""

    def config_for(backbone: str, weights: str):  # type: ignore[no-untyped-def]
        values = {"backbone": backbone, "weights": weights, "freeze_depth": "all", "neck": "gap", "head": "linear"}
        return build_config(values, base=spec.base_config(dataset), checkpoint_for=checkpoint_for)

    return config_for


def screen(spec: StudySpec, dataset: DatasetSpec, *, checkpoint_for, cache: FeatureCache,  # type: ignore[no-untyped-def]
           quiet: bool) -> list[Candidate]:
    """The dataset's candidates ranked by the spec's screening score; what is dropped is said on stderr."""
    assert spec.screen is not None
    ranked = screen_dataset(spec, config_for=probe_config_for(spec, dataset, checkpoint_for), cache=cache,
                            score=spec.screen.score)
    chosen, dropped = kept(ranked, spec.screen.keep)
    if not quiet:
        def show(cs: list[Candidate]) -> str:
            return ", ".join(f"{c.key} ({spec.screen.score} {c.score(spec.screen.score):.3f}{', tie' if c.tied else ''})"  # type: ignore[union-attr]
                             for c in cs)

        sys.stderr.write(f"screening {dataset.key}: searching {show(chosen)}"
                         + (f"; dropped {show(dropped)}" if dropped else "") + "\n")
    return ranked


def record_screen(study: optuna.Study, tracker: Tracker, spec: StudySpec, dataset: DatasetSpec, parent_run_id: str,
                  ranked: list[Candidate]) -> None:
    """Keep every score with the Optuna study (for ``screen_tau``) and in an MLflow screening run;
    the parent run names the candidates left out."""
    assert spec.screen is not None
    study.set_user_attr(SCREEN_SCORES, {c.key: {name: c.score(name) for name in SCORES} for c in ranked})
    record_screening(tracker, spec, dataset, ranked, score=spec.screen.score, keep=spec.screen.keep,
                     start_ms=int(time.time() * 1000))
    dropped = kept(ranked, spec.screen.keep)[1]
    if tracker.enabled and parent_run_id:
        tracker.set_tags(parent_run_id, {SCREEN_DROPPED: ", ".join(c.key for c in dropped) or "none"})


def screen_tau(study: optuna.Study) -> dict[str, float]:
    """Kendall's tau of each screening score against the best validation accuracy of each candidate
    the search tried (``screen.tau_<score>``, ``screen.n_candidates``), and where each score ranked
    the candidate that did best (``screen.best_rank_<score>``, 1 = first: it is in a kept top K when
    the rank is at most K); empty below two candidates."""
    scores = study.user_attrs.get(SCREEN_SCORES)
    if not scores:
        return {}
    best: dict[str, float] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = candidate_of(trial)
        if key in scores:
            best[key] = max(best.get(key, float("-inf")), trial.values[0])
    if len(best) < 2:
        return {}
    from scipy.stats import kendalltau  # slow import: only for a screened study's summary
    keys = sorted(best)
    winner = max(keys, key=lambda k: best[k])
    out = {"screen.n_candidates": float(len(keys))}
    for name in SCORES:
        tau = kendalltau([scores[k][name] for k in keys], [best[k] for k in keys]).statistic
        if tau == tau:  # NaN when either side is constant
            out[f"screen.tau_{name}"] = float(tau)
        # Among every screened candidate, searched or not: a dropped one can still outrank the winner.
        out[f"screen.best_rank_{name}"] = float(1 + sum(s[name] > scores[winner][name] for s in scores.values()))
    return out


__all__ = ["probe_config_for", "record_screen", "screen", "screen_tau"]
