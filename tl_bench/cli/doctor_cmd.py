"""``tl-bench doctor SPEC``: report (and with ``--repair`` fix) where the Optuna storage and MLflow disagree."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from tl_bench.cli.app import app, print_json
from tl_bench.shell import shell_command

if TYPE_CHECKING:
    from tl_bench.doctor.finding import DoctorReport


@app.command("doctor")
def doctor(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Study file (YAML) whose stores are checked."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (default: the spec's)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: the spec's)."),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="Check only these datasets (repeatable)."),
    repair: bool = typer.Option(False, "--repair", help="Fix what was found (finished results are never changed)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
) -> None:
    """Find trials left RUNNING by dead workers, runs left RUNNING, trials with no run, runs with no trial.

    Exits 0 when both stores agree (or every finding was repaired), 1 when findings remain.
    """
    from tl_bench.doctor import diagnose
    from tl_bench.report import log_study_dashboard
    from tl_bench.spec import load_spec

    spec = load_spec(spec_path).with_overrides(storage=storage, tracking_uri=tracking_uri, datasets=dataset)
    report = diagnose(spec, repair=repair, on_summary=log_study_dashboard)
    if json_out:
        print_json(report.to_dict())
    else:
        chosen = [*(["--storage", storage] if storage else []),
                  *(["--tracking-uri", tracking_uri] if tracking_uri else []),
                  *(word for name in dataset or [] for word in ("--dataset", name))]
        _print(report, again=shell_command("tl-bench", "doctor", spec_path, *chosen, "--repair"))
    if report.left:
        raise typer.Exit(1)


def _print(report: DoctorReport, *, again: str) -> None:
    """The findings, and what is left; ``again`` is the command that repairs them, quoted to paste."""
    console = Console()
    if report.findings:
        table = Table("kind", "study", "trial", "run", "what is wrong", "repair", "done")
        for f in report.findings:
            table.add_row(f.kind, f.study, "" if f.trial is None else str(f.trial), (f.run_id or "")[:12],
                          f.detail, f.repair, "yes" if f.repaired else "no")
        console.print(table)
    checked = f"{len(report.studies)} studies, {report.trials} trials, {report.runs} trial runs checked"
    if not report.findings:
        console.print(f"consistent: {checked}")
    elif report.left:
        hint = "" if report.repair else f"; to fix them:  {again}"
        console.print(f"{len(report.left)} of {len(report.findings)} findings left ({checked}){hint}", soft_wrap=True,
                      markup=False)
    else:
        console.print(f"repaired {len(report.findings)} findings ({checked})")
