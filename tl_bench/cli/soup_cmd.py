"""``tl-bench soup`` and ``tl-bench ensemble``: a study's kept models made into one challenger.

The commands are plain functions registered by ``cli/app.py``; this module imports nothing of
the CLI, so the app can import it without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

_SPEC_ARG = typer.Argument(..., metavar="SPEC", help="Study file (YAML) whose study has run with keep_models: {top_k: K}.")
_DATASET = typer.Option(..., "--dataset", help="The dataset (its key in the study file).")
_URI = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: the spec's).")


def soup_command(
    spec_path: Path = _SPEC_ARG,
    dataset: str = _DATASET,
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Candidates: the first K kept models by "
                                        "validation accuracy (default: every kept model)."),
    uniform: bool = typer.Option(False, "--uniform", help="Average every compatible candidate (default: greedy, "
                                 "adding one only when validation accuracy does not drop)."),
    tracking_uri: Optional[str] = _URI,
) -> None:
    """Average the weights of kept models that share architecture and start (backbone, weights, adaptation,
    neck, head) into one model; record it as a run of kind soup, register it and let the promotion gate judge it."""
    from tl_bench.spec import load_spec

    spec = load_spec(spec_path).with_overrides(tracking_uri=tracking_uri)
    chosen = spec.dataset(dataset)
    from tl_bench.combine import make_soup

    for line in make_soup(spec, chosen, top_k=top_k, uniform=uniform).lines():
        typer.echo(line)


def ensemble_command(
    spec_path: Path = _SPEC_ARG,
    dataset: str = _DATASET,
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Members: the first K kept models by "
                                        "validation accuracy (default: every kept model)."),
    tracking_uri: Optional[str] = _URI,
) -> None:
    """Average the logits of the first kept models, served as one MLflow model; record it as a run of kind
    ensemble with its inference cost, register it and let the promotion gate judge it."""
    from tl_bench.spec import load_spec

    spec = load_spec(spec_path).with_overrides(tracking_uri=tracking_uri)
    chosen = spec.dataset(dataset)
    from tl_bench.combine import make_ensemble

    for line in make_ensemble(spec, chosen, top_k=top_k).lines():
        typer.echo(line)
