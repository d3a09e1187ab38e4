"""``tl-bench run SPEC``: search every dataset of a study file, then show the leaderboard."""

from __future__ import annotations

import os
import signal
import socket
import zlib
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tl_bench.cli.app import app
from tl_bench.shell import shell_command


def _sigterm_as_interrupt() -> None:
    # SIGTERM ends the current trial the same way Ctrl-C does: recorded in both stores, then exit.
    from tl_bench.study import Terminated

    def _terminate(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, _terminate)


def _positive(value: Optional[float]) -> Optional[float]:
    # Typer's `min` is inclusive; a time limit of 0 s would end every study before its first trial.
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not accepted; accepted: a positive number of seconds")
    return value


@app.command("run")
def run(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Study file (YAML), e.g. studies/quickstart.yaml."),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="Run only these datasets (repeatable)."),
    n_trials: Optional[int] = typer.Option(None, "--n-trials", min=1, help="Budget of finished trials per dataset study."),
    timeout: Optional[float] = typer.Option(None, "--timeout", callback=_positive, help="Seconds (> 0) per dataset study in this invocation."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes on this machine (or Dask tasks with --dask)."),
    devices: Optional[str] = typer.Option(None, "--devices", help="CUDA device ids the workers are spread over, e.g. 0,1 (default: every visible device)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Torch threads of this process (default: all cores; each of N workers gets cores / N)."),
    dask: Optional[str] = typer.Option(None, "--dask", help="Run the workers as Dask tasks: 'local' (a cluster on 127.0.0.1) or a scheduler address."),
    gpus_per_worker: int = typer.Option(0, "--gpus-per-worker", min=0, help="With --dask: GPU resources each task asks for (workers started with --resources GPU=1)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (default: the spec's, or runs/optuna.db)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: runs/mlflow.db)."),
    worker_index: Optional[int] = typer.Option(None, "--worker-index", min=0, help="Distinct per host when many hosts share a storage; seeds the sampler."),
    top: int = typer.Option(10, "--top", help="Leaderboard rows shown per dataset at the end."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display or leaderboard."),
    continue_changed: bool = typer.Option(False, "--continue-changed", help="Go on with a stored study although the study file now changes what its trials measure (space, fixed, dataset, objective, pretraining); the change is recorded in the study."),
) -> None:
    """Search backbone x weights x freeze depth x neck x head x hyperparameters for each dataset."""
    from tl_bench.spec import load_spec

    # The study file is checked before torch, MLflow and Optuna are imported: a mistake in it is told at once.
    loaded = load_spec(spec_path)
    spec = loaded.with_overrides(
        storage=storage, tracking_uri=tracking_uri, n_trials=n_trials, timeout_s=timeout, datasets=dataset
    )
    import optuna
    import torch

    from tl_bench.study import RunOptions, run_spec

    if optuna.logging.get_verbosity() == optuna.logging.INFO:  # its default; each trial is on the progress line
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    if worker_index is None:
        # A shared storage may have other hosts drawing from the same seed: offset by host and process.
        shared = storage is not None or spec.storage_url != loaded.storage_url
        worker_index = zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 100_000 if shared else 0
    argv = ["run", str(spec_path), "--storage", spec.storage_url, "--tracking-uri", spec.tracking_uri]
    for name in dataset or []:
        argv += ["--dataset", name]
    if n_trials is not None:
        argv += ["--n-trials", str(n_trials)]
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    if continue_changed:
        argv += ["--continue-changed"]
    _sigterm_as_interrupt()
    if threads is not None:
        torch.set_num_threads(threads)
    device_ids = [d.strip() for d in devices.split(",") if d.strip()] if devices is not None else None
    from tl_bench.report import log_study_dashboard

    options = RunOptions(n_trials=n_trials, timeout_s=timeout, workers=workers, worker_index=worker_index,
                         devices=device_ids, dask=dask, gpus_per_worker=gpus_per_worker,
                         on_summary=log_study_dashboard, continue_changed=continue_changed)
    try:
        outcomes = run_spec(spec, options, worker_argv=argv, quiet=quiet)
    except KeyboardInterrupt as err:
        from tl_bench.study import Terminated
        from tl_bench.study.interrupts import interrupt_line

        Console(stderr=True).print(interrupt_line(err), markup=False, soft_wrap=True)
        raise typer.Exit(143 if isinstance(err, Terminated) else 130) from None
    if not quiet:
        _print_results(spec, outcomes, top,
                       store_option=["--tracking-uri", spec.tracking_uri] if tracking_uri else None)
    _exit_without_a_result(outcomes)


def _exit_without_a_result(outcomes) -> None:  # type: ignore[no-untyped-def]
    """A dataset study that has run trials and completed none ends the command with exit 1, saying why
    in one line per study: the distinct errors its trials failed with."""
    empty = [o for o in outcomes if sum(o.counts.values()) and not o.counts.get("COMPLETE")]
    for outcome in empty:
        ended = ", ".join(f"{v} {k.lower()}" for k, v in outcome.counts.items() if v)
        why = "; ".join(outcome.errors[:3]) + (f" (and {len(outcome.errors) - 3} more)" if len(outcome.errors) > 3 else "")
        typer.echo(f"error: {outcome.study_name} has no complete trial ({ended})" + (f": {why}" if why else ""),
                   err=True)
    if empty:
        raise typer.Exit(1)


def _print_results(spec, outcomes, top: int, *, store_option: list[str] | None = None) -> None:  # type: ignore[no-untyped-def]
    """The leaderboards, then the commands that open this run's store (the one it used, as the user named it),
    each quoted to paste into a shell."""
    from tl_bench.report import DEFAULT_METRIC, leaderboard, print_leaderboard
    from tl_bench.report.ui import plain_ui_link

    console = Console()
    for outcome in outcomes:
        counts = ", ".join(f"{v} {k.lower()}" for k, v in outcome.counts.items() if v)
        console.print(f"\n[bold]{spec.name} / {outcome.dataset}[/bold]: {counts or 'no trials'}")
        frame = leaderboard(spec.tracking_uri, study=spec.name, dataset=outcome.dataset, top=top)
        print_leaderboard(frame, title=f"Leaderboard: {outcome.dataset} (top {top}, ranked by {DEFAULT_METRIC}; "
                                       "test_acc of the rows validation chose)")
    # Commands to copy: never wrapped at the terminal's width, never read as markup.
    store = store_option or ["--spec", _shown_path(spec.source_path)]
    console.print(f"\nBrowse every trial in the MLflow UI:  {shell_command('tl-bench', 'ui', *store)}",
                  soft_wrap=True, markup=False)
    console.print(f"  (or: {shell_command('mlflow', 'ui', '--backend-store-uri', spec.tracking_uri)})",
                  soft_wrap=True, markup=False)
    console.print(f"  then open {plain_ui_link(spec.tracking_uri, spec.name)}  (MLflow's model-training view)",
                  soft_wrap=True, markup=False)
    console.print("Export the leaderboard:  "
                  f"{shell_command('tl-bench', 'leaderboard', *store, '--csv', 'leaderboard.csv')}",
                  soft_wrap=True, markup=False)
    _print_models(console, spec, outcomes, store)


def _print_models(console: Console, spec, outcomes, store: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Each dataset study's registered winner, why the latest version was or was not promoted, and the
    commands that use the winner."""
    from tl_bench.tracking.evaluation_record import PROMOTED, PROMOTION_REASON, REPORT_LINK, TEMPERATURE
    from tl_bench.tracking.loading import shown_uri
    from tl_bench.tracking.model_registry import champion, latest_version
    from tl_bench.tracking.names import TRIAL

    for outcome in outcomes:
        name = spec.registered_model_name(outcome.dataset)
        version = champion(spec.tracking_uri, name)
        if version is None:
            continue
        uri = f"models:/{name}@champion"
        console.print(f"\nRegistered model:  {name} version {version.version} (alias champion; trial "
                      f"{version.tags.get(TRIAL, '?')})", soft_wrap=True)
        latest = latest_version(spec.tracking_uri, name)
        if latest is not None and PROMOTION_REASON in latest.tags:
            verdict = "promoted" if latest.tags.get(PROMOTED) == "true" else "not promoted (alias challenger)"
            console.print(f"  Latest version {latest.version} (trial {latest.tags.get(TRIAL, '?')}) {verdict}: "
                          f"{latest.tags[PROMOTION_REASON]}", soft_wrap=True, markup=False)
        if REPORT_LINK in version.tags:
            tags = version.tags
            console.print(f"  Evaluation report:  test top-1 {float(tags['eval_test_top1']):.4f}, ECE "
                          f"{float(tags['eval_ece']):.4f} -> {float(tags['eval_ece_scaled']):.4f} at temperature "
                          f"{float(tags[TEMPERATURE]):.3f}; in the MLflow UI at {tags[REPORT_LINK]}", soft_wrap=True,
                          markup=False)
        commands = {
            "Predict": shell_command("tl-bench", "predict", uri, "IMAGE_OR_FOLDER", *store),
            "Export": shell_command("tl-bench", "export", *store, "--dataset", outcome.dataset, "--out", name),
            "Serve": shell_command("mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "--host",
                                   "127.0.0.1", "--port", "5001",
                                   env={"MLFLOW_TRACKING_URI": shown_uri(spec.tracking_uri)}),
        }
        for label, line in commands.items():
            console.print(f"  {label}:  {line}", soft_wrap=True, markup=False)


def _shown_path(path: Path) -> str:
    """The path as the user would type it here: relative below the working folder, else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
