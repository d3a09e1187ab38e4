"""Screening inside a study: rank the candidates before the search, record what it found, and say
afterwards whether it predicted the search (Kendall's tau between each score and the best
validation accuracy each candidate reached), and whether it beat the data-free static rankers
(the same tau for each backbone's parameter count and forward FLOPs).
"""

from __future__ import annotations

import sys
import time

import optuna
from optuna.trial import TrialState

from tl_bench.models import default_img_size
from tl_bench.screen import RECORDED, SCORES, STATIC_RANKERS, Candidate, kendall_tau, kept, record_screening, screen_dataset
from tl_bench.spec import DatasetSpec, ScreenSpec, StudySpec
from tl_bench.study.space import build_config, candidate_of
from tl_bench.study.storage import SCREEN_SCORES
from tl_bench.tracking import SCREEN_DROPPED, Tracker
from tl_bench.train import FeatureCache


def screen_settings(spec: StudySpec) -> ScreenSpec:
    """The spec's screening section, or its defaults where it has none (``tl-bench screen`` of any spec)."""
    return spec.screen if spec.screen is not None else ScreenSpec()


def probe_config_for(spec: StudySpec, dataset: DatasetSpec, checkpoint_for):  # type: ignore[no-untyped-def]
    """(backbone, weights) -> the linear probe of that candidate on ``dataset`` (what screening scores),
    at the dataset's input size or, with ``screen.img_size: pretrained``, at the backbone's pretrained one."""
    at_pretrained = screen_settings(spec).img_size == "pretrained"
    base = spec.base_config(dataset)
    # Screening scores frozen features as they are: whatever the search trains with (augmentation,
    # mixing, an adaptation method) is the search's, never the probe's.
    unchanged = {"augment": "none", "mixup": 0.0, "cutmix": 0.0, "adaptation": "full", "use_cache": True}
    overridden = [f"{k}: {base[k]}" for k in ("augment", "mixup", "cutmix", "adaptation")
                  if k in base and base[k] not in (unchanged[k], False)]
    if overridden:
        sys.stderr.write(f"screening {dataset.key} scores frozen, unaugmented features: {', '.join(overridden)} "
                         "applies to the search only\n")

    def config_for(backbone: str, weights: str):  # type: ignore[no-untyped-def]
        values = {"backbone": backbone, "weights": weights, "freeze_depth": "all", "neck": "gap", "head": "linear",
                  **unchanged}
        if at_pretrained:
            values["img_size"] = default_img_size(backbone)
        return build_config(values, base=base, checkpoint_for=checkpoint_for)

    return config_for


def screen(spec: StudySpec, dataset: DatasetSpec, *, checkpoint_for, cache: FeatureCache,  # type: ignore[no-untyped-def]
           quiet: bool) -> list[Candidate]:
    """The dataset's candidates ranked by the spec's screening score; what is dropped is said on stderr."""
    settings = screen_settings(spec)
    ranked = screen_dataset(spec, config_for=probe_config_for(spec, dataset, checkpoint_for), cache=cache,
                            score=settings.score)
    chosen, dropped = kept(ranked, settings.keep)
    if not quiet:
        def show(cs: list[Candidate]) -> str:
            return ", ".join(f"{c.label} ({settings.score} {c.score(settings.score):.3f}{', tie' if c.tied else ''}, "
                             f"{c.params:,.0f} params, {c.flops:.3g} FLOPs)" for c in cs)

        sys.stderr.write(f"screening {dataset.key}: searching {show(chosen)}"
                         + (f"; dropped {show(dropped)}" if dropped else "") + "\n")
    return ranked


def record_screen(study: optuna.Study, tracker: Tracker, spec: StudySpec, dataset: DatasetSpec, parent_run_id: str,
                  ranked: list[Candidate]) -> None:
    """Keep every score and static value with the Optuna study (for ``screen_tau``) and in an MLflow
    screening run; the parent run names the candidates left out."""
    settings = screen_settings(spec)
    study.set_user_attr(SCREEN_SCORES, {c.key: c.values() for c in ranked})
    record_screening(tracker, spec, dataset, ranked, score=settings.score, keep=settings.keep,
                     start_ms=int(time.time() * 1000))
    dropped = kept(ranked, settings.keep)[1]
    if tracker.enabled and parent_run_id:
        tracker.set_tags(parent_run_id, {SCREEN_DROPPED: ", ".join(c.key for c in dropped) or "none"})


def screen_tau(study: optuna.Study) -> dict[str, float]:
    """Kendall's tau (tau-b: tied pairs, such as two weights of one backbone under a static ranker,
    count for neither side) of each screening score and each static ranker against the best
    validation accuracy of each candidate the search tried (``screen.tau_logme``, ``screen.tau_knn``,
    ``screen.tau_params``, ``screen.tau_flops``; left out where undefined, e.g. one backbone only),
    ``screen.n_candidates``, and where each ranked the candidate that did best
    (``screen.best_rank_<name>``, 1 = first, candidates ranked above it counted strictly: it is in a
    kept top K when the rank is at most K); empty below two candidates. A score earns its seconds
    only where its tau beats both static ones. Studies screened before static values were kept give
    the scores' figures only."""
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
    keys = sorted(best)
    winner = max(keys, key=lambda k: best[k])
    out = {"screen.n_candidates": float(len(keys))}
    for name in RECORDED:
        if not all(name in s for s in scores.values()):
            continue
        tau = kendall_tau([scores[k][name] for k in keys], [best[k] for k in keys])
        if tau is not None:
            out[f"screen.tau_{name}"] = tau
        # Among every screened candidate, searched or not: a dropped one can still outrank the winner.
        out[f"screen.best_rank_{name}"] = float(1 + sum(s[name] > scores[winner][name] for s in scores.values()))
    return out


def tau_line(metrics: dict[str, float]) -> str:
    """``screen_tau``'s figures as one line: each score's tau, then the static rankers' beside them."""
    def show(names: tuple[str, ...]) -> str:
        return ", ".join(f"{n} {metrics[f'screen.tau_{n}']:.2f}" if f"screen.tau_{n}" in metrics else f"{n} n/a"
                         for n in names)

    return (f"Screening, Kendall's tau against each candidate's best val_acc over "
            f"{int(metrics['screen.n_candidates'])} candidates: {show(SCORES)}; static rankers: {show(STATIC_RANKERS)}")


__all__ = ["probe_config_for", "record_screen", "screen", "screen_settings", "screen_tau", "tau_line"]
