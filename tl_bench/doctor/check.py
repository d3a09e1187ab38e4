"""The trial and study checks of ``tl-bench doctor``, and ``diagnose``, which runs every check."""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from tl_bench.config import TrialConfig
from tl_bench.doctor.finding import DoctorReport, Finding
from tl_bench.doctor.kept_models import check_models
from tl_bench.doctor.pretraining import pretrain_findings
from tl_bench.doctor.screen_runs import screen_run_findings
from tl_bench.doctor.study_end import check_end
from tl_bench.spec import DatasetSpec, StudySpec
from tl_bench.study.reconcile import (
    ENDED,
    abandoned_trials,
    of_study,
    run_state,
    state_agrees,
    study_runs_filter,
    trial_number,
)
from tl_bench.study.preflight import check_recorded_here
from tl_bench.study.budget import Budget
from tl_bench.study.options import SummaryCallback
from tl_bench.study.storage import (
    ERROR_ATTR,
    PARENT_RUN,
    RUN_ATTR,
    SURPLUS,
    fail_trial,
    make_storage,
    optuna_study_id,
    storage_faults,
)
from tl_bench.tracking import (
    DUPLICATE_OF,
    ERROR,
    N_STAGES,
    OPTUNA_STUDY,
    OPTUNA_STUDY_ID,
    ORPHAN,
    REPAIRED,
    STATE,
    Run,
    Tracker,
    config_params,
    experiment_exists,
    store_missing,
    trial_run_name,
    trial_tags,
)


def diagnose(spec: StudySpec, *, repair: bool = False, on_summary: SummaryCallback | None = None) -> DoctorReport:
    """Check every dataset study of ``spec`` (stores from the spec or its overrides).

    Without ``repair`` nothing is written, not even a missing local store:
    no Optuna storage means nothing to check, no MLflow store means no runs.
    A study end that is written again is handed to ``on_summary`` too (the caller's dashboard).
    """
    report = DoctorReport(repair=repair)
    with storage_faults(spec.storage_url):
        studies = [] if store_missing(spec.storage_url) else _studies(spec, write=repair)
        for _, study in studies:
            check_recorded_here(spec, study)
        tracker = None
        if studies or not store_missing(spec.tracking_uri):
            tracker = None if not repair and store_missing(spec.tracking_uri) else _tracker(spec, create=repair)
        for ds, study in studies:
            report.studies.append(study.study_name)
            _check_study(report, study, tracker, spec, ds, repair=repair)
        if tracker is not None:
            report.findings.extend(pretrain_findings(spec, tracker, repair=repair))
            report.findings.extend(screen_run_findings(spec, tracker, repair=repair))
            report.findings.extend(check_models(spec, studies, repair=repair))
            for ds, study in studies:  # once its trials and kept models are in order
                end = check_end(study, tracker, spec, ds, repair=repair, on_summary=on_summary)
                if end is not None:
                    report.findings.append(end)
    return report


def _studies(spec: StudySpec, *, write: bool) -> list[tuple[DatasetSpec, optuna.Study]]:
    """The spec's dataset studies that the Optuna storage holds (opened to be written, or only read)."""
    storage = make_storage(spec.storage_url, write=write)
    found = []
    for ds in spec.datasets:
        try:
            found.append((ds, optuna.load_study(study_name=spec.study_name(ds), storage=storage)))
        except KeyError:
            continue
    return found


def _tracker(spec: StudySpec, *, create: bool) -> Tracker | None:
    """The spec's experiment, or None when it does not exist and may not be created."""
    if not create and not experiment_exists(spec.tracking_uri, spec.name):
        return None
    return Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location, write=create)


def _check_study(
    report: DoctorReport,
    study: optuna.Study,
    tracker: Tracker | None,
    spec: StudySpec,
    ds: DatasetSpec,
    *,
    repair: bool,
) -> None:
    name = study.study_name
    for trial, reason in abandoned_trials(study):
        found = Finding("abandoned_trial", name, trial.number, trial.user_attrs.get(RUN_ATTR), reason, "mark the trial FAIL")
        found.repaired = repair and fail_trial(study, trial, reason)
        report.findings.append(found)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    report.trials += len(trials)
    study_id = optuna_study_id(study)
    runs = [r for r in tracker.runs(study_runs_filter(name)) if of_study(r, study_id)] if tracker is not None else []
    report.runs += len(runs)
    claims: dict[int, list[Run]] = {}
    for run in runs:
        number = trial_number(run)
        if number in trials:
            claims.setdefault(number, []).append(run)
        elif ORPHAN not in run.data.tags:
            report.findings.append(_orphan(run, name, number, tracker, repair))
    for number, trial in sorted(trials.items()):
        # A surplus trial ended unrun, before any run existed: nothing to check in MLflow.
        if trial.state in ENDED and trial.user_attrs.get(ERROR_ATTR) != SURPLUS:
            report.findings.extend(_check_trial(trial, claims.get(number, []), name, tracker, spec, ds, study, repair))
    parent = _check_parent(study, trials, tracker, spec, repair)
    if parent is not None:
        report.findings.append(parent)


def _check_trial(
    trial: FrozenTrial,
    runs: list[Run],
    name: str,
    tracker: Tracker | None,
    spec: StudySpec,
    ds: DatasetSpec,
    study: optuna.Study,
    repair: bool,
) -> list[Finding]:
    out: list[Finding] = []
    state = run_state(trial)
    error = trial.user_attrs.get(ERROR_ATTR) if trial.state == TrialState.FAIL else None
    if not runs:
        found = Finding("trial_without_run", name, trial.number, None, f"{state} trial has no MLflow run",
                        "create its run from the Optuna trial")
        if repair and tracker is not None:
            found.run_id = record_trial_run(tracker, spec, ds, study, trial)
            found.repaired = True
        return [found]
    own_id = trial.user_attrs.get(RUN_ATTR)
    own = next((r for r in runs if r.info.run_id == own_id), min(runs, key=lambda r: r.info.start_time or 0))
    for run in runs:
        if run is own or DUPLICATE_OF in run.data.tags:
            continue
        found = Finding("duplicate_run", name, trial.number, run.info.run_id,
                        f"a second run for the trial (its run is {own.info.run_id})", "end it FAILED, tag tlb.duplicate_of")
        if repair and tracker is not None:
            _mark(tracker, run, "FAIL", f"duplicate run of trial {trial.number}", {DUPLICATE_OF: own.info.run_id})
            found.repaired = True
        out.append(found)
    if own.info.status == "RUNNING":
        found = Finding("run_left_running", name, trial.number, own.info.run_id,
                        f"the trial is {state}, its run is RUNNING", f"end the run as {state}")
    elif not state_agrees(trial, own):
        found = Finding("state_mismatch", name, trial.number, own.info.run_id,
                        f"the trial is {state}, its run {own.info.status} ({own.data.tags.get(STATE, 'no state')})",
                        f"give the run the state {state}")
    else:
        return out
    if repair and tracker is not None:
        tracker.end_run(own.info.run_id, state, error=error, tags={REPAIRED: found.kind})
        found.repaired = True
    out.append(found)
    return out


def _mark(tracker: Tracker, run: Run, state: str, error: str, tags: dict[str, str]) -> None:
    """Tag a run that should not count; end it too when it still says RUNNING."""
    if run.info.status == "RUNNING":
        tracker.end_run(run.info.run_id, state, error=error, tags=tags)
    else:
        tracker.set_tags(run.info.run_id, tags)


def _orphan(run: Run, name: str, number: int | None, tracker: Tracker | None, repair: bool) -> Finding:
    found = Finding("run_without_trial", name, number, run.info.run_id,
                    f"study {name!r} has no trial {number} ({run.info.status})", "tag tlb.orphan; end it FAILED if RUNNING")
    if repair and tracker is not None:
        reason = f"no trial {number} in Optuna study {name}"
        _mark(tracker, run, "FAIL", reason, {ORPHAN: reason})
        found.repaired = True
    return found


def _check_parent(
    study: optuna.Study, trials: dict[int, FrozenTrial], tracker: Tracker | None, spec: StudySpec, repair: bool
) -> Finding | None:
    run_id = study.user_attrs.get(PARENT_RUN)
    if tracker is None or not tracker.enabled or not run_id:
        return None
    if tracker.run_status(run_id) != "RUNNING":
        return None
    if any(t.state == TrialState.RUNNING for t in trials.values()):
        return None  # a worker is at it
    status = _study_status(list(trials.values()), spec)
    found = Finding("study_run_left_running", study.study_name, None, run_id,
                    "the study's run is RUNNING but no trial runs", f"end it {status}")
    if repair:
        tracker.close_parent(run_id, status)
        found.repaired = True
    return found


def _study_status(trials: list[FrozenTrial], spec: StudySpec) -> str:
    """FINISHED once the study holds its budget of finished trials, else KILLED (stopped short)."""
    return "FINISHED" if Budget(spec.budget.n_trials).met_by(trials) else "KILLED"


def record_trial_run(
    tracker: Tracker, spec: StudySpec, ds: DatasetSpec, study: optuna.Study, trial: FrozenTrial
) -> str:
    """Write the MLflow run an ended trial never got, from what Optuna kept; returns its run id.

    Params are the trial's full config when the spec's space still rebuilds it,
    else the raw Optuna params; metrics are the objective values, the numeric
    user attributes and the reported per-epoch values; times are the trial's.
    Optuna does not let an ended trial take a new attribute, so the link runs
    one way: the run's ``tlb.optuna_study`` and ``tlb.trial`` tags.
    """
    config = _config_of(spec, ds, trial)
    params = config_params(config) if config is not None else {k: str(v) for k, v in trial.params.items()}
    tags = trial_tags(study=spec.name, dataset=ds.key, trial_number=trial.number, state=run_state(trial),
                      parent_run_id=_parent_run(tracker, spec, ds, study))
    tags.update({OPTUNA_STUDY: study.study_name, OPTUNA_STUDY_ID: optuna_study_id(study), REPAIRED: "trial_without_run"})
    if trial.state == TrialState.FAIL:
        tags[ERROR] = str(trial.user_attrs.get(ERROR_ATTR) or "failed before its run was written")
    if "n_stages" in trial.user_attrs:
        tags[N_STAGES] = str(trial.user_attrs["n_stages"])
    start = int(trial.datetime_start.timestamp() * 1000) if trial.datetime_start else int(time.time() * 1000)
    end = int(trial.datetime_complete.timestamp() * 1000) if trial.datetime_complete else start
    metrics = [(m, float(v), 0) for m, v in zip(spec.objective.metrics, trial.values or [])]
    metrics += [(k, float(v), 0) for k, v in trial.user_attrs.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "pid"]
    metrics += [("epoch_val_acc", float(v), int(step)) for step, v in trial.intermediate_values.items()]
    name = trial_run_name(config, trial.number, ds.key) if config is not None else f"{ds.key}-trial-t{trial.number}"
    return tracker.record_run(run_name=name, tags=tags, params=params, metrics=metrics, state=run_state(trial),
                              start_ms=start, end_ms=end)


def _config_of(spec: StudySpec, ds: DatasetSpec, trial: FrozenTrial) -> TrialConfig | None:
    """The trial's TrialConfig rebuilt from its params, or None when the space no longer yields it."""
    from tl_bench.models import count_stages
    from tl_bench.study.preflight import checkpoint_resolver
    from tl_bench.study.space import SearchSpace, build_config

    checkpoint_for = checkpoint_resolver(spec, None, pretrain=False)  # the checkpoint it used; never pretrain here

    try:
        space = SearchSpace(spec, {b.name: count_stages(b.name) for b in spec.space.backbones})
        values = space.suggest(optuna.trial.FixedTrial(dict(trial.params), number=trial.number))
        return build_config(values, base=spec.base_config(ds), checkpoint_for=checkpoint_for)
    except Exception:  # the spec's space changed since the trial ran: keep the raw params
        return None


def _parent_run(tracker: Tracker, spec: StudySpec, ds: DatasetSpec, study: optuna.Study) -> str:
    """The study's parent run, created when the study never had one (tracking was off)."""
    study_id = optuna_study_id(study)
    run_id = study.user_attrs.get(PARENT_RUN) or tracker.find_parent_run(study.study_name, study_id)
    if not run_id:
        run_id = tracker.create_parent_run(study=spec.name, dataset=ds.key, optuna_study=study.study_name,
                                           study_id=study_id)
        tracker.close_parent(run_id, _study_status(study.get_trials(deepcopy=False), spec))
    if study.user_attrs.get(PARENT_RUN) != run_id:
        study.set_user_attr(PARENT_RUN, run_id)
    return str(run_id)


__all__ = ["diagnose", "record_trial_run"]
