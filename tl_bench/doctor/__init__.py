"""``tl-bench doctor``: where the Optuna storage and MLflow disagree, and (with ``repair``) the fix.

A trial's Optuna state is written last, after its MLflow run, so Optuna is the
commit point: repairs bring MLflow in line with Optuna, never the other way.
Nothing is deleted but records that point at nothing, and a finished trial and
the params and metrics of its run are never changed; a repair ends runs, sets
state tags, marks runs with ``tlb.repair``, or writes the run a trial never got.

What is looked for (``Finding.kind``):

- ``abandoned_trial``: RUNNING in Optuna, but its worker died (same host: the
  process is gone; any host: no heartbeat for the grace period) -> FAIL.
- ``run_left_running``: the trial ended, its run still says RUNNING -> ended
  with the trial's state.
- ``state_mismatch``: the run ended in another state than its trial (the
  worker died between the two writes) -> the run takes the trial's state.
- ``trial_without_run``: an ended trial has no run -> the run is created from
  the trial's params, values, attributes and times.
- ``duplicate_run``: a second run claims the same trial -> ended FAILED and
  tagged ``tlb.duplicate_of``.
- ``run_without_trial``: a run names a trial the study does not have -> ended
  FAILED if RUNNING, tagged ``tlb.orphan`` (its results are kept).
- ``study_run_left_running``: the study's parent run says RUNNING while no
  trial runs -> FINISHED when the budget is complete, else KILLED.
- ``model_without_files`` and ``version_without_model``: a kept model or a
  registered version of ``<study>-<dataset>`` whose run or model files are
  gone -> deleted (``kept_models``); the only deletions doctor makes, of
  records that point at nothing, and only while the artifact store can be
  read (one that is away is one ``StorageError`` line, nothing deleted).
- ``model_left_pending``: a trial's model a dead process never finalised ->
  finished when its files are whole, else deleted (``kept_models``).
- ``unfinished_summary``: the study's end (summary, champion) claimed by a
  process that is gone before it was all written -> written (``study_end``).
- ``pretrain_run_left_running`` and ``checkpoint_without_run``: local
  pretraining recorded short of its end (``pretraining``).
- ``screen_run_left_running``: a screening run whose process died while it
  was written -> FAILED (``screen_runs``).

A store that cannot be used (another store than the study's, locked past the
wait, read-only, full) ends the check with one ``StorageError`` line.

``finding`` holds what a check reports; ``check`` the trial and study checks
and ``diagnose``; ``kept_models``, ``study_end`` and ``pretraining`` the checks of those records.
"""

from __future__ import annotations

from tl_bench.doctor.check import diagnose, record_trial_run
from tl_bench.doctor.finding import DoctorReport, Finding

__all__ = ["DoctorReport", "Finding", "diagnose", "record_trial_run"]
