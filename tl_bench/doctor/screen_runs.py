"""``tl-bench doctor`` on screening runs: one left RUNNING by a process that is gone.

A screening run (``tlb.kind=screen``) is written in one go once its candidates
are scored, and ends FAILED when a write fails; only a process killed while it
wrote leaves one RUNNING. What is looked for (``Finding.kind``):

- ``screen_run_left_running``: a screening run says RUNNING and the process that
  wrote it is gone (same host: its pid; another host, or no pid recorded: started
  longer ago than a store write can take) -> FAILED (its scores may be partial;
  ``tl-bench screen`` scores again from the feature cache in seconds).
"""

from __future__ import annotations

from tl_bench.doctor.finding import Finding
from tl_bench.doctor.pretraining import _writer_alive
from tl_bench.spec import StudySpec
from tl_bench.tracking import DATASET, KIND, KIND_SCREEN, REPAIRED, Run, Tracker

LEFT_RUNNING = "screen_run_left_running"
STOPPED = "screening process stopped before its run was written"


def screen_run_findings(spec: StudySpec, tracker: Tracker, *, repair: bool) -> list[Finding]:
    """Screening runs of the spec's experiment left RUNNING by a dead process; ended FAILED with ``repair``."""
    runs = tracker.runs(f"tags.`{KIND}` = '{KIND_SCREEN}' and attributes.status = 'RUNNING'")
    return [_left_running(spec, tracker, run, repair) for run in runs if not _writer_alive(run)]


def _left_running(spec: StudySpec, tracker: Tracker, run: Run, repair: bool) -> Finding:
    dataset = run.data.tags.get(DATASET, "?")
    found = Finding(LEFT_RUNNING, spec.name, None, run.info.run_id,
                    f"the screening run of dataset {dataset} is RUNNING; the process that wrote it is gone",
                    "end it FAILED (tl-bench screen scores again)")
    if repair:
        tracker.end_run(run.info.run_id, "FAIL", error=STOPPED, tags={REPAIRED: found.kind})
        found.repaired = True
    return found


__all__ = ["LEFT_RUNNING", "screen_run_findings"]
