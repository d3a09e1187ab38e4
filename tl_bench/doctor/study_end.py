"""``tl-bench doctor`` on a study's end: its summary and champion, claimed by a process that stopped short.

- ``unfinished_summary``: the study's end (``tl_bench.study.ending``: the summary on the parent run,
  the champion in the registry) was claimed by a process that is gone, and not marked done (it was
  killed, or interrupted while it summarised) -> written again under a new claim: the summary, the
  caller's ``on_summary`` (the CLI's dashboard), the champion version and its alias.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from tl_bench.doctor.finding import Finding
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.study.ending import claim_end, summarise, unfinished_end
from tl_bench.study.options import SummaryCallback
from tl_bench.study.reconcile import ENDED
from tl_bench.study.storage import PARENT_RUN
from tl_bench.tracking import Tracker


def check_end(study: optuna.Study, tracker: Tracker | None, spec: StudySpec, ds: DatasetSpec, *, repair: bool,
              on_summary: SummaryCallback | None = None) -> Finding | None:
    """The study's end left unfinished by a dead process, finished with ``repair``; None when there is none."""
    parent = study.user_attrs.get(PARENT_RUN)
    claim = unfinished_end(study)
    if tracker is None or not tracker.enabled or not parent or claim is None:
        return None
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.RUNNING for t in trials):
        return None  # a worker is at it: the last one ends the study
    found = Finding("unfinished_summary", study.study_name, None, str(parent),
                    f"the study's summary and champion were claimed by {claim.holder()}, which stopped before "
                    "writing them all", "write the summary and register the champion")
    if repair:
        ours = claim_end(study, sum(t.state in ENDED for t in trials))
        found.repaired = ours is not None and summarise(spec, tracker, study, ds.key, str(parent), ours, on_summary)
    return found


__all__ = ["check_end"]
