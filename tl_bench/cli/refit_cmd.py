"""``tl-bench refit SPEC --dataset D``: the leaderboard's first setting retrained on train + validation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tl_bench.cli.app import app


@app.command("refit")
def refit_command(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Study file (YAML) whose study has run."),
    dataset: str = typer.Option(..., "--dataset", help="The dataset (its key in the study file)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Training seeds: the setting's own and the next ones."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: the spec's)."),
) -> None:
    """Retrain the first leaderboard setting on train + val with the epochs the search chose; report test
    accuracy over seeds with a 95% interval, and register the model as the challenger."""
    from tl_bench.spec import load_spec

    spec = load_spec(spec_path).with_overrides(tracking_uri=tracking_uri)
    chosen = spec.dataset(dataset)

    from tl_bench.refit import refit_dataset

    outcome = refit_dataset(spec, chosen, seeds=seeds)
    for line in outcome.lines():
        typer.echo(line)
