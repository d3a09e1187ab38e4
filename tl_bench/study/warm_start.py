"""Warm start: a new study begins with the configurations that won in finished studies of the same
storage, mapped onto its own search space.

The ``top_k`` best complete trials of each source study (by its first objective) are enqueued
before the search. A parameter this space does not offer as it is (another backbone, a value
outside the range, a parameter not searched here) is left for the sampler, with a note.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from tl_bench.spec import StudySpec
from tl_bench.study.space import SearchSpace


def source_studies(spec: StudySpec, storage: optuna.storages.BaseStorage, this_study: str) -> list[str]:
    """The studies the spec's ``warm_start.from`` names (``same_store``: every other study there)."""
    assert spec.warm_start is not None
    if spec.warm_start.sources == "same_store":
        return [name for name in optuna.get_all_study_names(storage) if name != this_study]
    return [name for name in spec.warm_start.sources if name != this_study]


def warm_start(
    study: optuna.Study, storage: optuna.storages.BaseStorage, spec: StudySpec, space: SearchSpace
) -> list[str]:
    """Enqueue the best configurations of the source studies in ``storage``; one note per source."""
    assert spec.warm_start is not None
    notes = []
    for name in source_studies(spec, storage, study.study_name):
        try:
            source = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            notes.append(f"{name}: no such study in this storage")
            continue
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
    return notes


__all__ = ["source_studies", "warm_start"]
