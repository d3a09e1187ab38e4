"""Warm start: a new study begins with the configurations that won in finished studies of the same
storage, mapped onto its own search space.

The ``top_k`` best complete trials of each source study (by its first objective) are enqueued
before the search. A parameter this space does not offer as it is (another backbone, a value
outside the range, a parameter not searched here) is left for the sampler, with a note.

A source that saw images of this study's validation or test split (the same dataset on another
split, or a copy) chose its winners knowing them: one warning line names such sources and how
many images they share, found by pixel content (``tl_bench.data.overlap``). Each study records
its data settings when it is created, so later studies can check it as a source.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import optuna
from optuna.trial import TrialState

from tl_bench.config import DataSettings
from tl_bench.spec import StudySpec
from tl_bench.study.space import SearchSpace

DATA_ATTR = "data_settings"  # study user attribute: the DataSettings its trials were run on (JSON)


def record_data(study: optuna.Study, settings: DataSettings) -> None:
    """Remember what data ``study`` searches on, for the studies that warm-start from it."""
    study.set_user_attr(DATA_ATTR, json.dumps(dataclasses.asdict(settings), sort_keys=True))


def overlap_warning(sources: list[optuna.Study], target: DataSettings) -> str | None:
    """One line naming the sources that hold images of the target's validation or test split; None if none."""
    from tl_bench.data.overlap import shared_images

    found = []
    for source in sources:
        recorded = source.user_attrs.get(DATA_ATTR)
        if recorded is None:
            continue
        shared = shared_images(DataSettings(**json.loads(recorded)), target)
        if any(shared.values()):
            found.append(f"{source.study_name} ({shared['val']} validation, {shared['test']} test)")
    if not found:
        return None
    return ("warning: warm-start sources saw images of this study's held-out splits, so their winners may know "
            f"them: {'; '.join(found)}; use sources on other images for a fair start")


def source_studies(spec: StudySpec, storage: optuna.storages.BaseStorage, this_study: str) -> list[str]:
    """The studies the spec's ``warm_start.from`` names (``same_store``: every other study there)."""
    assert spec.warm_start is not None
    if spec.warm_start.sources == "same_store":
        return [name for name in optuna.get_all_study_names(storage) if name != this_study]
    return [name for name in spec.warm_start.sources if name != this_study]


def warm_start(
    study: optuna.Study, storage: optuna.storages.BaseStorage, spec: StudySpec, space: SearchSpace,
    target: DataSettings | None = None,
) -> list[str]:
    """Enqueue the best configurations of the source studies in ``storage``; one note per source, and a
    warning on stderr when a source shares images with ``target``'s validation or test split."""
    assert spec.warm_start is not None
    notes = []
    loaded = []
    for name in source_studies(spec, storage, study.study_name):
        try:
            source = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            notes.append(f"{name}: no such study in this storage")
            continue
        loaded.append(source)
        complete = source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = sorted(complete, key=lambda t: (-t.values[0], t.number))[: spec.warm_start.top_k]
        dropped: list[str] = []
        for trial in best:
            params, left_out = space.accepts(dict(trial.params))
            dropped += left_out
            if params:
                study.enqueue_trial(params, skip_if_exists=True)
        note = f"{name}: {len(best)} configuration(s)"
        notes.append(note + (f", left to the sampler: {', '.join(sorted(set(dropped)))}" if dropped else ""))
    warning = overlap_warning(loaded, target) if target is not None else None
    if warning is not None:
        sys.stderr.write(warning + "\n")
        notes.append(warning.removeprefix("warning: "))
    return notes


__all__ = ["DATA_ATTR", "overlap_warning", "record_data", "source_studies", "warm_start"]
