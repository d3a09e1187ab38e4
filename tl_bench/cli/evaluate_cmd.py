"""``tl-bench evaluate MODEL [IMAGE_FOLDER | --dataset D] [--spec S]``: a model's evaluation report, as a run.

The command is a plain function registered by ``cli/app.py``; this module imports nothing of the
CLI, so the app can import it without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tl_bench.errors import OutputError


def evaluate_command(
    model: str = typer.Argument(..., metavar="MODEL", help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/model."),
    images: Optional[Path] = typer.Argument(None, metavar="IMAGE_FOLDER", help="A labelled image folder: one sub-folder "
                                            "per class (or train/ and test/ folders of them: test/ is evaluated)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A dataset of the study file (--spec): its test "
                                          "split, temperature fitted on its validation split."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Study file: its MLflow store, and its datasets for --dataset."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: the spec's)."),
) -> None:
    """Report a model's confusion matrix, per-class precision/recall/F1, top-1/top-5 and calibration (ECE before
    and after temperature scaling) on a test split or an image folder, as an MLflow run of kind evaluation.
    Without IMAGE_FOLDER or --dataset: the test split of the model's own study."""
    from tl_bench.spec import load_spec
    from tl_bench.tracking import locate_store, require_store

    if images is not None and dataset is not None:
        raise OutputError("give IMAGE_FOLDER or --dataset, not both", "one place to evaluate on")
    if dataset is not None and spec is None:
        raise OutputError("--dataset needs --spec", "the study file whose dataset it is")
    loaded = load_spec(spec) if spec is not None else None
    uri = locate_store(tracking_uri or (loaded.tracking_uri if loaded is not None else None))
    require_store(uri)
    chosen = loaded.dataset(dataset) if loaded is not None and dataset is not None else None

    from tl_bench.champion.evaluate_model import evaluate_model

    outcome = evaluate_model(uri, model, data_settings=chosen.data_settings if chosen is not None else None,
                             folder=images, dataset_key=chosen.key if chosen is not None else None)
    for line in outcome.skipped:
        typer.echo(f"skipped {line}", err=True)
    for line in outcome.lines():
        typer.echo(line)
