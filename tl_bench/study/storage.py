"""Optuna storage and study opening: one study per (spec, dataset), resumable.

SQLite (the embedded default) and PostgreSQL both go through ``RDBStorage``
with a heartbeat, so a worker that dies without a word is noticed by the
others; plain ``optuna.load_study(storage=URL)`` opens the same studies.

This module is the one place that touches Optuna's private API (the heartbeat
write, ``Study._storage``, ``FrozenTrial._trial_id``, the stale-trial lookup, the
RDB storage's session and trial models): an ask/tell loop has no public way to run
a heartbeat, to fail a trial with a reason, or to write several attributes of a
trial in one transaction (each public setter is a commit of its own).
``tests/study/test_storage.py`` pins the behaviour relied on.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import optuna

from tl_bench.versions import check_tested

check_tested("optuna", optuna.__version__)  # before anything private of it is imported

from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled  # noqa: E402
from optuna.storages._rdb import models as rdb_models  # noqa: E402
from optuna.storages._rdb.storage import _create_scoped_session  # noqa: E402
from optuna.study._tell import _check_values_are_feasible  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402
from sqlalchemy.engine import URL, make_url  # noqa: E402

from tl_bench.errors import SpecError, StorageError, first_line  # noqa: E402
from tl_bench.spec.identity import Change, identity_changes  # noqa: E402
from tl_bench.faults import LOCK_WAIT_S, check_sqlite_path, classify, faults_of, store_error
from tl_bench.file_lock import LockHeldError, creating
from tl_bench.redact import redact
from tl_bench.study.reconnect import ReconnectingStorage, retried

HEARTBEAT_S = 10
CLAIM_SETTLE_S = 0.25  # longer than two workers' writes of one attribute take to land
GRACE_S = 40
# Attributes tl-bench keeps in Optuna. Study: the space it was made from, its MLflow parent run.
SPACE_DIGEST = "space_digest"  # what stores of earlier versions recorded of the study's identity
IDENTITY = "study_identity"  # everything that changes what a trial measures (tl_bench.spec.identity)
IDENTITY_CHANGES = "identity_changes"  # [{"at": UTC time, "changes": [...]}] each --continue-changed accepted
PARENT_RUN = "mlflow_parent_run_id"
SCREEN_SCORES = "screen_scores"  # {"<backbone>|<weights>": {"logme": ..., "knn": ...}} when screened
SUMMARY_CLAIM = "summary_claim"  # the process that ends the study (tl_bench.study.ending.Claim)
SUMMARY_DONE = "summary_done"  # the token of the last claim whose end was written whole
STUDY_UID = "study_uid"  # random, set at creation: SQLite gives a deleted study's id to the next one
# Trial: the worker that runs it (host, pid, pid namespace), its MLflow run, why it failed.
HOST_ATTR = "host"
PID_ATTR = "pid"
PIDNS_ATTR = "pid_namespace"
RUN_ATTR = "mlflow_run_id"
ERROR_ATTR = "error"
# Trial: the ERROR_ATTR of a trial asked for after other workers had already taken the whole budget.
SURPLUS = "not run: other workers had taken the whole budget when it was asked for"
# Trial: where it ran (the worker's CUDA_VISIBLE_DEVICES, "" when unset) and with how many torch threads.
DEVICES_ATTR = "cuda_visible_devices"
THREADS_ATTR = "threads"


STORE = "Optuna storage"


def _postgres_driver(parsed: URL) -> URL:
    """SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3; fall back to psycopg2 when only it is installed."""
    if parsed.drivername == "postgresql" and find_spec("psycopg") is None and find_spec("psycopg2") is not None:
        return parsed.set(drivername="postgresql+psycopg2")
    return parsed


def _open_rdb(url: str, engine_kwargs: dict[str, Any], attempts: int = 3, *,
              server: bool = False) -> optuna.storages.RDBStorage:
    # A database server may restart under a long study: its storage reconnects (tl_bench.study.reconnect).
    kind = ReconnectingStorage if server else optuna.storages.RDBStorage
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return kind(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except Exception as err:
            # Two processes creating the schema of a new storage at once: the loser finds it made.
            if "already exists" not in str(err) or attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def make_storage(url: str, *, write: bool = True) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeat; StorageError with one line when it cannot be opened
    (or, with ``write``, when an SQLite file could not be written)."""
    engine_kwargs: dict[str, Any] = {}
    new_file: Path | None = None  # an SQLite file this call creates: removed again if it stays empty
    try:
        parsed = make_url(url)
    except Exception as err:
        raise StorageError(f"Optuna storage URL {redact(url)!r} is not a database URL",
                           "sqlite:///PATH or postgresql://USER@HOST/DB") from err
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            check_sqlite_path(Path(parsed.database), STORE, write=write)
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            new_file = None if Path(parsed.database).exists() else Path(parsed.database)
        # Several local workers share one file: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": LOCK_WAIT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
        if parsed.get_backend_name().startswith("postgresql"):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
            parsed = _postgres_driver(parsed)
    sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    try:
        # Two processes opening a new SQLite storage at once: one creates its schema while the other waits.
        with creating(Path(str(parsed.database)), STORE) if sqlite_file and write else nullcontext():
            return _open_rdb(parsed.render_as_string(hide_password=False), engine_kwargs,
                             server=parsed.get_backend_name() != "sqlite")
    except LockHeldError:
        raise
    except Exception as err:
        if new_file is not None and new_file.exists() and new_file.stat().st_size == 0:
            new_file.unlink()  # e.g. a full disk: SQLite made the file, then could not write its tables
        found = classify(err)
        if found is not None and found[0] != "unreachable":  # locked, full, read-only: what to do about it
            raise store_error(err, STORE, url) from err
        raise StorageError(f"{STORE} {redact(url)!r} cannot be opened: {first_line(err, 200)}",
                           "a reachable sqlite:///PATH or postgresql://USER@HOST/DB") from err


def storage_faults(url: str) -> AbstractContextManager[None]:
    """A block whose Optuna storage faults (locked, read-only, full disk, a database gone) end as one line."""
    return faults_of(STORE, url, also=(optuna.exceptions.StorageInternalError,))


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    directions: list[str],
    metric_names: list[str],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    space_digest: str,
    source: str,
    identity: Mapping[str, Any] | None = None,
    continue_changed: bool = False,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it and check it measures what it was made to measure.

    Returns ``(study, created)``: exactly one caller across every worker and
    host gets ``created=True``, which makes it the one to set the study up.
    ``metric_names`` name the values (``val_acc``, a cost) in Optuna's own tools.
    ``identity`` (``StudySpec.identity``) is recorded with a new study and compared with a stored
    one; a difference is a SpecError unless ``continue_changed`` (then ``adopt_identity`` records it).
    """
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, directions=directions, sampler=sampler, pruner=pruner
        )
        study.set_user_attr(SPACE_DIGEST, space_digest)
        study.set_user_attr(STUDY_UID, uuid.uuid4().hex)
        if identity is not None:
            study.set_user_attr(IDENTITY, dict(identity))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    _check_same(study, directions=directions, space_digest=space_digest, source=source, identity=identity,
                continue_changed=continue_changed)
    return study, False


def check_study(
    storage: optuna.storages.BaseStorage, name: str, *, directions: list[str], space_digest: str, source: str,
    identity: Mapping[str, Any] | None = None, continue_changed: bool = False,
) -> optuna.Study | None:
    """Study ``name`` when it exists, else None; SpecError when it was made with another objective, or
    (unless ``continue_changed``) measures something else than ``identity`` says.

    Writes nothing, so a command can check every study before it records anything.
    """
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    _check_same(study, directions=directions, space_digest=space_digest, source=source, identity=identity,
                continue_changed=continue_changed)
    return study


# How a refusal names the part of the study file that changed.
_SECTION_WORDS = {"space": "search space", "fixed": "fixed values", "dataset": "dataset", "objective": "objective",
                  "constraints": "constraints", "latency": "latency measurement", "pretrain": "pretraining"}
CHANGED_WORDS = ("a new spec name (name: in the study file) for a new study, or `tl-bench run --continue-changed` "
                 "to go on with this study, the change recorded")


def study_changes(study: optuna.Study, *, space_digest: str,
                  identity: Mapping[str, Any] | None = None) -> list[Change]:
    """How ``identity`` differs from what ``study`` recorded; a store that recorded only the space's
    digest (earlier versions) is compared on that."""
    recorded = study.user_attrs.get(IDENTITY)
    if isinstance(recorded, dict) and identity is not None:
        return identity_changes(recorded, identity)
    found = study.user_attrs.get(SPACE_DIGEST)
    if found is not None and found != space_digest:
        return [Change("space", f"digest {found}", f"digest {space_digest}")]
    return []


def _check_same(study: optuna.Study, *, directions: list[str], space_digest: str, source: str,
                identity: Mapping[str, Any] | None = None, continue_changed: bool = False) -> None:
    name = study.study_name
    have = [d.name.lower() for d in study.directions]
    if have != [d.lower() for d in directions]:
        raise SpecError(f"study {name!r} was created with directions {have}, the spec asks for {directions}",
                        "a new spec name, or the original objective", source=source, field="objective")
    changes = study_changes(study, space_digest=space_digest, identity=identity)
    if changes and not continue_changed:
        sections = list(dict.fromkeys(_SECTION_WORDS.get(c.field.split(".")[0], c.field) for c in changes))
        shown = "; ".join(str(c) for c in changes[:3]) + (f" (and {len(changes) - 3} more)" if len(changes) > 3 else "")
        raise SpecError(f"study {name!r} already exists in this storage with a different {' and '.join(sections)}: "
                        f"{shown}", CHANGED_WORDS, source=source, field=changes[0].field)


def adopt_identity(study: optuna.Study, *, space_digest: str, identity: Mapping[str, Any]) -> list[Change]:
    """Record ``identity`` as the study's, and return how it differs from the one recorded before.

    A study stored before the identity was recorded (only its space's digest) takes it without a
    change being noted when the space is the same; a change (accepted with ``--continue-changed``) is
    appended, with its time, to the study's ``identity_changes``.
    """
    changes = study_changes(study, space_digest=space_digest, identity=identity)
    if changes:
        history = list(study.user_attrs.get(IDENTITY_CHANGES) or [])
        history.append({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "changes": [str(c) for c in changes]})
        study.set_user_attr(IDENTITY_CHANGES, history)
    recorded = study.user_attrs.get(IDENTITY)
    # A section this caller did not compute (a fingerprint) stays as recorded.
    merged = {**(recorded if isinstance(recorded, dict) else {}), **identity}
    if changes or json.dumps(recorded, sort_keys=True) != json.dumps(merged, sort_keys=True):
        study.set_user_attr(IDENTITY, merged)
        study.set_user_attr(SPACE_DIGEST, space_digest)
    return changes


def identity_change_note(study: optuna.Study) -> str:
    """Every change ``--continue-changed`` accepted in ``study``, one ``TIME: change; change`` entry each,
    newest first (the parent run's tag, which a long history overruns at its end)."""
    history = study.user_attrs.get(IDENTITY_CHANGES) or []
    return " | ".join(f"{entry['at']}: {'; '.join(entry['changes'])}" for entry in reversed(history))


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` without the warning that heartbeats are meant for ``Study.optimize``:
    this ask/tell loop runs the heartbeat itself (see ``heartbeat``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


def _rdb_backend(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    backend = getattr(study._storage, "_backend", study._storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def set_system_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    """A system attribute of a running trial (Optuna 4 keeps a trial's constraints in one)."""
    trial.storage.set_trial_system_attr(trial._trial_id, key, value)


def set_trial_attrs(
    trial: optuna.Trial | optuna.trial.FixedTrial, attrs: Mapping[str, Any], steps: Mapping[int, float] | None = None
) -> None:
    """``trial.set_user_attr`` for each of ``attrs`` and ``trial.report`` for each of ``steps``
    (epoch -> intermediate value), in one transaction of an RDB storage instead of one commit each.

    The trial is looked up once and the rows it already has are read in one query each, where
    Optuna's setters look the trial up again for every value (two statements a value).
    """
    steps = {int(k): float(v) for k, v in (steps or {}).items()}
    backend = _rdb_backend(trial.study) if isinstance(trial, optuna.Trial) else None
    if backend is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for step, value in steps.items():
            trial.report(value, step)
        return
    def write() -> None:
        with _create_scoped_session(backend.scoped_session, True) as session:
            _write_attrs(session, backend, trial, attrs, steps)

    retried(backend, write)


def _write_attrs(session: Any, backend: optuna.storages.RDBStorage, trial: optuna.Trial,
                 attrs: Mapping[str, Any], steps: dict[int, float]) -> rdb_models.TrialModel:
    """Write ``attrs`` and ``steps`` of a running trial in ``session``; returns its (locked) row."""
    trial_id = trial._trial_id
    row = rdb_models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
    backend.check_trial_is_updatable(trial_id, row.state)
    users = rdb_models.TrialUserAttributeModel
    stored = {r.key: r for r in session.query(users).filter(
        users.trial_id == trial_id, users.key.in_(list(attrs)))} if attrs else {}
    for key, value in attrs.items():
        if key in stored:
            stored[key].value_json = json.dumps(value)
        else:
            session.add(users(trial_id=trial_id, key=key, value_json=json.dumps(value)))
    values = rdb_models.TrialIntermediateValueModel
    reported = {r.step: r for r in session.query(values).filter(
        values.trial_id == trial_id, values.step.in_(list(steps)))} if steps else {}
    for step, value in steps.items():
        number, kind = values.intermediate_value_to_stored_repr(value)
        if step in reported:
            reported[step].intermediate_value, reported[step].intermediate_value_type = number, kind
        else:
            session.add(values(trial_id=trial_id, step=step, intermediate_value=number,
                               intermediate_value_type=kind))
    # What the trial object reads back, as its own setters leave it.
    trial._cached_frozen_trial.user_attrs.update(attrs)
    trial._cached_frozen_trial.intermediate_values.update(steps)
    return row


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: Sequence[float] | None = None,
    *,
    state: TrialState | None = None,
    attrs: Mapping[str, Any] | None = None,
    steps: Mapping[int, float] | None = None,
) -> None:
    """``study.tell`` with the trial's last ``attrs`` and ``steps`` (see ``set_trial_attrs``) in the
    same transaction as its state and values, on an RDB storage: one write, where ``set_trial_attrs``
    then ``study.tell`` make one and then read the trial back twice (before and after their write).

    The outcome is Optuna's: ``values`` that are not finite numbers make the trial FAIL when no state is
    given, a pruned trial takes its last intermediate value, and the sampler's ``after_trial`` runs
    before the write (which happens even when it raises, as in Optuna).
    """
    steps = {int(k): float(v) for k, v in (steps or {}).items()}
    backend = _rdb_backend(study)
    if backend is None:
        if attrs or steps:
            set_trial_attrs(trial, attrs or {}, steps)
        study.tell(trial, values, state=state)
        return
    study._thread_local.cached_all_trials = None  # as Study.tell: the trial list read in this trial is stale
    frozen = trial._cached_frozen_trial
    frozen.intermediate_values.update(steps)
    state, values = _outcome(study, frozen, values, state)
    try:
        study.sampler.after_trial(optuna.pruners._filter_study(study, frozen), frozen, state, values)
    finally:
        retried(backend, lambda: _write_end(backend, trial, state, values, attrs or {}, steps))


def _write_end(backend: optuna.storages.RDBStorage, trial: optuna.Trial, state: TrialState,
               values: Sequence[float] | None, attrs: Mapping[str, Any], steps: dict[int, float]) -> None:
    """A trial's last ``attrs`` and ``steps``, its values and its state, in one transaction."""
    with _create_scoped_session(backend.scoped_session, True) as session:
        row = _write_attrs(session, backend, trial, attrs, steps)
        for objective, value in enumerate(values or []):
            backend._set_trial_value_without_commit(session, row, objective, value)
        row.state = state
        row.datetime_complete = datetime.now()


def _outcome(study: optuna.Study, frozen: FrozenTrial, values: Sequence[float] | None,
             state: TrialState | None) -> tuple[TrialState, list[float] | None]:
    """The state and values ``Study.tell`` would store for these arguments."""
    if state == TrialState.PRUNED and values is None and frozen.last_step is not None:
        last = frozen.intermediate_values[frozen.last_step]
        return state, [last] if _check_values_are_feasible(study, [last]) is None else None
    if state is not None:
        return state, None if values is None else [float(v) for v in values]
    problem = "no value" if values is None else _check_values_are_feasible(study, values)
    if problem is not None:
        warnings.warn(problem, stacklevel=3)
        return TrialState.FAIL, None
    return TrialState.COMPLETE, [float(v) for v in values]


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Beat for ``trial`` while the block runs, as ``study.optimize`` does for its own trials.

    Optuna's own heartbeat thread dies with a traceback on the first write that fails; this one
    tries again at the next beat, so a store that is locked or full for a while prints nothing
    here: the trial's next write reports it (as one line) if it lasts.
    """
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        yield
        return
    stop = threading.Event()
    interval = storage.get_heartbeat_interval() or HEARTBEAT_S

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception:  # noqa: BLE001 - see the docstring; a missed beat is retried
                pass
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def optuna_study_id(study: optuna.Study) -> str:
    """The study's identity in MLflow (the ``tlb.optuna_study_id`` tag): Optuna's study id, and the random
    ``study_uid`` of a study created since it was recorded, so that a study deleted with Optuna and created
    again under its name (SQLite may give it the same id) is another study."""
    uid = study.user_attrs.get(STUDY_UID)
    return f"{study._study_id}-{uid}" if uid else str(study._study_id)


def stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """RUNNING trials (any host) whose heartbeat stopped more than the grace period ago.

    ``optuna.storages.fail_stale_trials`` would fail them at once, with no way to
    say why; tl-bench records the reason first, so it asks for the ids itself.
    """
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    stale = set(storage._get_stale_trial_ids(study._study_id))
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t._trial_id in stale]


def fail_trial(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Mark another process's RUNNING trial FAIL with ``reason``; False when it ended first."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, reason)
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


__all__ = [
    "set_system_attr",
    "DEVICES_ATTR",
    "ERROR_ATTR",
    "HOST_ATTR",
    "PARENT_RUN",
    "PIDNS_ATTR",
    "PID_ATTR",
    "RUN_ATTR",
    "SPACE_DIGEST",
    "IDENTITY",
    "IDENTITY_CHANGES",
    "CHANGED_WORDS",
    "adopt_identity",
    "identity_change_note",
    "study_changes",
    "SCREEN_SCORES",
    "STUDY_UID",
    "SUMMARY_CLAIM",
    "SUMMARY_DONE",
    "SURPLUS",
    "THREADS_ATTR",
    "ask",
    "check_study",
    "optuna_study_id",
    "fail_trial",
    "heartbeat",
    "make_storage",
    "open_study",
    "set_trial_attrs",
    "stale_trials",
    "storage_faults",
    "tell",
]
