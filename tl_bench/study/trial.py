"""One trial: ask, train, tell, with its MLflow child run kept in step.

Optuna's ask/tell interface (instead of ``study.optimize``) lets every exit
of a trial -- complete, pruned, failed, interrupted -- be written to both
stores before anything else happens.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from tl_bench.config import TrialConfig, TrialResult
from tl_bench.errors import StorageError
from tl_bench.redact import redact
from tl_bench.spec import DatasetSpec
from tl_bench.study.keep import ModelKeeper, warn
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
    tell,
)
from tl_bench.study.workers import pid_namespace
from tl_bench.tracking import CUDA_VISIBLE_DEVICES, OPTUNA_STUDY, THREADS, Tracker, pruned_tags
from tl_bench.tracking.system import system_metrics
from tl_bench.train import FeatureCache, TrainedModel


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it ends a trial the way Ctrl-C does."""


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return redact(f"{type(err).__name__}: {text[0] if text else ''}".strip()[:1000])


@dataclass
class TrialContext:
    """What every trial of one dataset study shares."""

    study: optuna.Study
    space: SearchSpace
    spec_name: str
    dataset: DatasetSpec
    base: dict[str, Any]  # the dataset's fields and the spec's fixed values
    tracker: Tracker
    parent_run_id: str
    checkpoint_for: Callable[[str, str], str | None]  # (backbone, weights) -> checkpoint file
    train_fn: Callable[..., TrialResult]
    metrics: list[str]  # the TrialResult fields that are Optuna's values, in order
    n_trials: int | None = None  # the study's budget of finished trials
    fingerprint: str | None = None
    cache: FeatureCache | None = None
    on_progress: Callable[[dict[str, Any]], None] = field(default=lambda info: None)
    keeper: ModelKeeper | None = None  # keeps the models of the study's top trials (None: keep none)


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


def run_trial(ctx: TrialContext) -> TrialState | None:
    """Ask for a trial, train it, tell both stores how it ended; None when it was not run.

    Workers check the budget before they ask, but two may ask at the same
    moment; the one whose trial comes after the budget is taken ends it at once
    (FAIL, reason ``SURPLUS``, no MLflow run), so the budget is met exactly.
    """
    trial = ask(ctx.study)
    if _surplus(ctx.study, trial.number, ctx.n_trials):
        _tell(ctx.study, trial, state=TrialState.FAIL, attrs={ERROR_ATTR: SURPLUS})
        return None
    with heartbeat(ctx.study, trial):
        return _train_and_tell(ctx, trial)


def _surplus(study: optuna.Study, number: int, n_trials: int | None) -> bool:
    """Whether the trials numbered before ``number`` that finished or still run take the whole budget.
    Fewer than ``n_trials`` trials come before trial ``n_trials - 1``: the storage is only read after."""
    if n_trials is None or number < n_trials:
        return False
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.number < number for t in study.get_trials(deepcopy=False, states=states)) >= n_trials


def _start_run(ctx: TrialContext, trial: optuna.Trial, config: TrialConfig | dict[str, Any],
               attrs: Mapping[str, Any]) -> str:
    """The trial's MLflow run, and in one Optuna write ``attrs``, the worker that runs it and that run."""
    run_id = ctx.tracker.start_trial(
        ctx.parent_run_id,
        config,
        study=ctx.spec_name,
        dataset=ctx.dataset.key,
        trial_number=trial.number,
        fingerprint=ctx.fingerprint,
        extra_tags={OPTUNA_STUDY: ctx.study.study_name, THREADS: str(torch.get_num_threads()),
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
    })
    return run_id


def _train_and_tell(ctx: TrialContext, trial: optuna.Trial) -> TrialState:
    history: list[dict[str, float]] = []
    trained: list[TrainedModel] = []
    run_id = ""
    values: dict[str, Any] = {}
    config: TrialConfig | None = None
    # Optuna prunes single-objective studies only. Without a pruner the intermediate values wait for the
    # trial's end and go with its last write: one commit instead of a report (and a read back) per epoch.
    multi = len(ctx.study.directions) > 1
    report_now = not multi and not isinstance(ctx.study.pruner, optuna.pruners.NopPruner)
    steps: dict[int, float] = {}
    chosen: dict[str, Any] = {}  # the parts with one choice, written with the trial's first attributes
    try:
        values = ctx.space.suggest(trial, chosen)
        config = build_config(values, base=ctx.base, checkpoint_for=ctx.checkpoint_for)
        run_id = _start_run(ctx, trial, config, chosen)
        ctx.on_progress({"trial": trial.number, "config": config, "epoch": 0})

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            history.append({"epoch": float(epoch), **metrics})
            ctx.on_progress({"trial": trial.number, "config": config, "epoch": epoch, **metrics})
            if report_now:
                trial.report(metrics["val_acc"], epoch)
                # Pruning at the last epoch would save nothing and lose a finished result.
                if epoch < config.epochs and trial.should_prune():
                    raise optuna.TrialPruned(f"{type(ctx.study.pruner).__name__}: val_acc {metrics['val_acc']:.4f} "
                                             f"at epoch {epoch}")
            elif not multi:
                steps[epoch] = metrics["val_acc"]

        keep = {"on_trained": lambda model, _: trained.append(model)} if ctx.keeper is not None else {}
        with system_metrics(ctx.tracker.tracking_uri if ctx.tracker.enabled else None, run_id):
            result = ctx.train_fn(config, on_epoch=on_epoch, cache=ctx.cache, **keep)
    except optuna.TrialPruned as err:
        _tell(ctx.study, trial, state=TrialState.PRUNED)
        epoch = int(history[-1]["epoch"]) if history else 0
        ctx.tracker.finish_trial(run_id, "PRUNED", history=history, config=config, tags=pruned_tags(epoch, str(err)))
        return TrialState.PRUNED
    except (KeyboardInterrupt, SystemExit) as err:
        # Ctrl-C or SIGTERM: record the trial as failed-by-interrupt in both stores, then stop.
        reason = "interrupted by " + (
            "SIGTERM" if isinstance(err, Terminated) else "signal" if isinstance(err, SystemExit) else "Ctrl-C"
        )
        _tell(ctx.study, trial, state=TrialState.FAIL, attrs={**chosen, ERROR_ATTR: reason}, steps=steps)
        ctx.tracker.finish_trial(run_id, "INTERRUPTED", history=history, error=reason, config=config)
        raise
    except StorageError as err:  # the tracking store failed: say why in Optuna, then stop the study
        _fail_for_store(ctx, trial, err, steps, chosen)
        raise
    except Exception as err:  # a failing trial is recorded as failed; the study goes on
        message = one_line(err)
        if config is None:  # failed before its config (and so its run) existed: a run from what was sampled
            with contextlib.suppress(Exception):  # the store itself may be what failed; Optuna has the error
                run_id = _start_run(ctx, trial, {**ctx.base, **values}, chosen)
        _tell(ctx.study, trial, state=TrialState.FAIL, attrs={**chosen, ERROR_ATTR: message}, steps=steps)
        ctx.tracker.finish_trial(run_id, "FAIL", history=history, error=message, config=config)
        return TrialState.FAIL
    values = [float(getattr(result, name)) for name in ctx.metrics]
    attrs = {key: getattr(result, key) for key in ("test_acc", "train_time_s", "params_trainable", "n_stages")}
    try:
        ctx.tracker.finish_trial(run_id, "COMPLETE", result=result, history=history, config=config)
    except StorageError as err:
        _fail_for_store(ctx, trial, err, steps, attrs)
        raise
    _tell(ctx.study, trial, values, attrs=attrs, steps=steps)
    if ctx.keeper is not None and trained:  # complete in both stores first: only complete trials keep a model
        try:
            ctx.keeper.keep(trial.number, run_id, config, result, trained.pop())
        except Exception as err:
            warn(f"the model of trial {trial.number} was not kept", err)
    return TrialState.COMPLETE


def _fail_for_store(
    ctx: TrialContext,
    trial: optuna.Trial,
    err: StorageError,
    steps: Mapping[int, float],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """A trial whose results could not be recorded in MLflow is FAIL in Optuna, with the reason; its run
    (left RUNNING in a store that cannot be written now) is ended by the next start-up's reconcile."""
    reason = {ERROR_ATTR: f"not recorded: {err}"[:1000]}
    _tell(ctx.study, trial, state=TrialState.FAIL, attrs={**(attrs or {}), **reason}, steps=steps)


__all__ = ["TrialContext", "Terminated", "one_line", "run_trial"]
