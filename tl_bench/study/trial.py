"""One trial: ask, train, then one classified end written to both stores and the keeper.

Optuna's ask/tell interface (instead of ``study.optimize``) lets every exit of a
trial -- complete, pruned, failed, interrupted, or the tracking store failing --
be recorded before anything else happens. As in Optuna's ``_run_trial``, how the
trial ended is classified once (``TrialEnd``), then told once, always in the same
order: MLflow first, then Optuna (the commit point: ``tl-bench doctor`` repairs
MLflow towards it), then the model keeper (only complete trials keep a model).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
import torch
from optuna.trial import TrialState

from tl_bench.config import TrialConfig, TrialResult
from tl_bench.errors import StorageError, first_line, warn
from tl_bench.file_lock import LockHeldError
from tl_bench.spec import DatasetSpec
from tl_bench.study.budget import Budget
from tl_bench.study.feasibility import feasibility_marks, record_constraints, verdict
from tl_bench.study.mo_pruner import check_rung
from tl_bench.study.samplers import SAMPLER_SEED_ATTR, cost_so_far, mo_rule
from tl_bench.study.keep import ModelKeeper
from tl_bench.study.space import SearchSpace, build_config
from tl_bench.study.storage import (
    DEVICES_ATTR,
    ERROR_ATTR,
    HOST_ATTR,
    PID_ATTR,
    PIDNS_ATTR,
    RUN_ATTR,
    SURPLUS,
    THREADS_ATTR,
    ask,
    heartbeat,
    set_trial_attrs,
    optuna_study_id,
    tell,
)
from tl_bench.study.interrupts import during, mark
from tl_bench.study.workers import pid_namespace
from tl_bench.tracking import CUDA_VISIBLE_DEVICES, OPTUNA_STUDY, OPTUNA_STUDY_ID, THREADS, Tracker, pruned_tags
from tl_bench.tracking.system import system_metrics
from tl_bench.train import FeatureCache, TrainedModel

Progress = Callable[[dict[str, Any]], None]


class TrialOwner(Protocol):
    """What a trial reads of the dataset study it belongs to (``DatasetStudy``)."""

    study: optuna.Study
    space: SearchSpace
    dataset: DatasetSpec
    base: dict[str, Any]
    parent_run_id: str
    metrics: list[str]
    keeper: ModelKeeper | None
    sampler_seed: int | None  # of the process's sampler (samplers.sampler_stream); None when unseeded

    @property
    def tracker(self) -> Tracker: ...
    @property
    def fingerprint(self) -> str | None: ...
    @property
    def env(self) -> Any: ...  # checkpoint_for, train_fn, cache and the spec's name


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it ends a trial the way Ctrl-C does."""


def _tell(study: optuna.Study, trial: optuna.Trial, *args: Any, **kwargs: Any) -> None:
    """``storage.tell``: the trial's last attributes and steps, state and values in one write.

    Optuna's GridSampler calls ``study.stop()`` after the last grid point, which raises
    outside ``study.optimize``; the trial is already stored by then (written in a
    ``finally``, as Optuna does), so that one error is dropped and the runner ends on
    ``grid_exhausted``.
    """
    try:
        tell(study, trial, *args, **kwargs)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


def run_trial(owner: TrialOwner, budget: Budget, on_progress: Progress) -> TrialState | None:
    """Ask for a trial, train it, record how it ended; None when it was not run.

    Workers check the budget before they ask, but two may ask at the same
    moment; the one whose trial comes after the budget is taken ends it at once
    (FAIL, reason ``SURPLUS``, no MLflow run), so the budget is met exactly.
    """
    trial = ask(owner.study)
    if budget.surplus(owner.study, trial.number):
        _tell(owner.study, trial, state=TrialState.FAIL, attrs={ERROR_ATTR: SURPLUS})
        return None
    with heartbeat(owner.study, trial), during(f"trial {trial.number} of {owner.study.study_name}", kind="trial"):
        return _train_and_tell(owner, trial, on_progress)


def _start_run(owner: TrialOwner, trial: optuna.Trial, config: TrialConfig | dict[str, Any],
               attrs: Mapping[str, Any]) -> str:
    """The trial's MLflow run, and in one Optuna write ``attrs``, the worker that runs it and that run."""
    run_id = owner.tracker.start_trial(
        owner.parent_run_id,
        config,
        study=owner.env.spec.name,
        dataset=owner.dataset.key,
        trial_number=trial.number,
        fingerprint=owner.fingerprint,
        extra_tags={OPTUNA_STUDY: owner.study.study_name, OPTUNA_STUDY_ID: optuna_study_id(owner.study),
                    THREADS: str(torch.get_num_threads()),
                    CUDA_VISIBLE_DEVICES: os.environ.get("CUDA_VISIBLE_DEVICES", "")},
    )
    set_trial_attrs(trial, {
        **attrs,
        HOST_ATTR: socket.gethostname(),
        PID_ATTR: os.getpid(),
        PIDNS_ATTR: pid_namespace(),
        DEVICES_ATTR: os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        THREADS_ATTR: torch.get_num_threads(),
        RUN_ATTR: run_id,
        **({} if owner.sampler_seed is None else {SAMPLER_SEED_ATTR: owner.sampler_seed}),
    })
    return run_id


@dataclass
class TrialEnd:
    """How a trial ended, classified once: what MLflow and Optuna are told, and what is raised after."""

    state: TrialState  # told to Optuna: COMPLETE, PRUNED or FAIL
    run_state: str  # the MLflow run's ``tlb.state``: COMPLETE, PRUNED, FAIL or INTERRUPTED
    values: list[float] | None = None  # Optuna's values of a complete trial
    attrs: dict[str, Any] = field(default_factory=dict)  # Optuna user attributes written with the state
    error: str | None = None  # the one line a failed trial is recorded with
    tags: Mapping[str, str] | None = None  # the run's extra tags (why it was pruned)
    result: TrialResult | None = None
    record_run: bool = True  # False when the tracking store is what failed: Optuna alone says why
    reraise: BaseException | None = None  # Ctrl-C, SIGTERM or a failed store stop the study after the record


def classify(err: BaseException, epochs_done: int, chosen: Mapping[str, Any]) -> TrialEnd:
    """The end of a trial that raised ``err`` (after ``epochs_done`` epochs); anything else propagates."""
    if isinstance(err, optuna.TrialPruned):
        return TrialEnd(TrialState.PRUNED, "PRUNED", tags=pruned_tags(epochs_done, str(err)))
    if isinstance(err, (KeyboardInterrupt, SystemExit)):  # Ctrl-C or SIGTERM: recorded, then the study stops
        reason = "interrupted by " + (
            "SIGTERM" if isinstance(err, Terminated) else "signal" if isinstance(err, SystemExit) else "Ctrl-C")
        return TrialEnd(TrialState.FAIL, "INTERRUPTED", attrs={**chosen, ERROR_ATTR: reason}, error=reason,
                        reraise=err)
    if isinstance(err, StorageError):  # the tracking store failed: say why in Optuna, then stop the study
        return _store_failed(err, chosen)
    if isinstance(err, LockHeldError):  # another process's pretraining held past the wait: said, then stop
        message = str(err)[:1000]
        return TrialEnd(TrialState.FAIL, "FAIL", attrs={**chosen, ERROR_ATTR: message}, error=message, reraise=err)
    if isinstance(err, Exception):  # a failing trial is recorded as failed; the study goes on
        message = f"{type(err).__name__}: {first_line(err, 1000)}"[:1000]
        return TrialEnd(TrialState.FAIL, "FAIL", attrs={**chosen, ERROR_ATTR: message}, error=message)
    raise err


def _store_failed(err: StorageError, attrs: Mapping[str, Any]) -> TrialEnd:
    # The run is left RUNNING in a store that cannot be written now; the next start-up's reconcile ends it.
    reason = f"not recorded: {err}"[:1000]
    return TrialEnd(TrialState.FAIL, "FAIL", attrs={**attrs, ERROR_ATTR: reason}, error=reason, record_run=False,
                    reraise=err)


def _train_and_tell(owner: TrialOwner, trial: optuna.Trial, on_progress: Progress) -> TrialState:
    history: list[dict[str, float]] = []
    trained: list[TrainedModel] = []
    run_id = ""
    values: dict[str, Any] = {}
    config: TrialConfig | None = None
    study, env = owner.study, owner.env
    # Optuna prunes single-objective studies only. Without a pruner the intermediate values wait for the
    # trial's end and go with its last write: one commit instead of a report (and a read back) per epoch.
    multi = len(study.directions) > 1
    report_now = not multi and not isinstance(study.pruner, optuna.pruners.NopPruner)
    steps: dict[int, float] = {}
    rule = mo_rule(env.spec) if multi else None
    chosen: dict[str, Any] = {}  # the parts with one choice, written with the trial's first attributes
    try:
        values = owner.space.suggest(trial, chosen)
        config = build_config(values, base=owner.base, checkpoint_for=env.checkpoint_for)
        run_id = _start_run(owner, trial, config, chosen)
        on_progress({"trial": trial.number, "config": config, "epoch": 0})

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            history.append({"epoch": float(epoch), **metrics})
            on_progress({"trial": trial.number, "config": config, "epoch": epoch, **metrics})
            if report_now:
                trial.report(metrics["val_acc"], epoch)
                # Pruning at the last epoch would save nothing and lose a finished result.
                if epoch < config.epochs and trial.should_prune():
                    raise optuna.TrialPruned(f"{type(study.pruner).__name__}: val_acc {metrics['val_acc']:.4f} "
                                             f"at epoch {epoch}")
            elif not multi:
                steps[epoch] = metrics["val_acc"]
            elif rule is not None:  # tl-bench's own multi-objective pruner: accuracy against cost so far
                reason = check_rung(rule, trial, epoch, max_epochs=config.epochs, acc=metrics["val_acc"],
                                    cost=cost_so_far(env.spec, metrics))
                if reason is not None:
                    raise optuna.TrialPruned(reason)

        keep = {"on_trained": lambda model, _: trained.append(model)} if owner.keeper is not None else {}
        with system_metrics(owner.tracker.tracking_uri if owner.tracker.enabled else None, run_id):
            result = env.train_fn(config, on_epoch=on_epoch, cache=env.cache, **keep)
    except BaseException as err:  # noqa: BLE001 -- classified: what is not a trial's end propagates
        end = classify(err, int(history[-1]["epoch"]) if history else 0, chosen)
        if config is None and end.record_run and end.run_state == "FAIL":
            # failed before its config (and so its run) existed: a run from what was sampled
            with contextlib.suppress(Exception):  # the store itself may be what failed; Optuna has the error
                run_id = _start_run(owner, trial, {**owner.base, **values}, chosen)
        if end.state == TrialState.PRUNED:
            end = _judged(owner, trial, end, None)
    else:
        attrs = {key: getattr(result, key) for key in ("test_acc", "train_time_s", "params_trainable", "n_stages")}
        end = TrialEnd(TrialState.COMPLETE, "COMPLETE", values=[float(getattr(result, m)) for m in owner.metrics],
                       attrs=attrs, result=result)
        end = _judged(owner, trial, end, result.metrics())
    return _record(owner, trial, end, run_id=run_id, history=history, config=config, steps=steps,
                   trained=trained)


def _judged(owner: TrialOwner, trial: optuna.Trial, end: TrialEnd, metrics: Mapping[str, Any] | None) -> TrialEnd:
    """``end`` with the study's constraints told to Optuna and marked on the trial and its run
    (``study.feasibility``); unchanged in a study without constraints."""
    constraints = owner.env.spec.constraints
    if not len(constraints):
        return end
    values, feasible = verdict(constraints, metrics)
    record_constraints(trial, values)
    attrs, tags = feasibility_marks(feasible)
    return dataclasses.replace(end, attrs={**end.attrs, **attrs}, tags={**(end.tags or {}), **tags})


def _record(owner: TrialOwner, trial: optuna.Trial, end: TrialEnd, *, run_id: str,
            history: list[dict[str, float]], config: TrialConfig | None, steps: Mapping[int, float],
            trained: list[TrainedModel]) -> TrialState:
    """Write ``end`` to MLflow, then to Optuna (the commit point), then keep a complete trial's model."""
    if end.record_run:
        try:
            owner.tracker.finish_trial(run_id, end.run_state, result=end.result, history=history, error=end.error,
                                       config=config, tags=end.tags)
        except StorageError as err:
            end = _store_failed(err, end.attrs)
    if end.values is not None and end.reraise is None:
        _tell(owner.study, trial, end.values, attrs=end.attrs, steps=steps)
    else:
        _tell(owner.study, trial, state=end.state, attrs=end.attrs, steps=steps)
    if end.reraise is not None:
        if end.run_state == "INTERRUPTED":
            mark(end.reraise, f"trial {trial.number} of {owner.study.study_name}", kind="trial", trial_failed=True)
        raise end.reraise
    if end.state == TrialState.COMPLETE and owner.keeper is not None and trained and end.result is not None:
        try:  # complete in both stores first: only complete trials keep a model
            owner.keeper.keep(trial.number, run_id, config, end.result, trained.pop())  # type: ignore[arg-type]
        except Exception as err:
            warn(f"the model of trial {trial.number} was not kept", err)
    return end.state


__all__ = ["Terminated", "TrialEnd", "TrialOwner", "classify", "run_trial"]
