"""``tl-bench export``: a kept model of a study out of MLflow, as a model folder and as plain files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from tl_bench.cli.app import app
from tl_bench.cli.leaderboard_cmd import _SPEC, _URI, _store
from tl_bench.errors import ModelNotFoundError, OutputError

if TYPE_CHECKING:
    from tl_bench.tracking.logged_models import KeptModel


def choose_model(tracking_uri: str, *, dataset: str, study: str | None, trial: int | None) -> tuple[KeptModel, str]:
    """The kept model asked for, and how it was chosen: trial ``trial``, else the registry's
    champion of ``<study>-<dataset>``, else the kept model of best validation accuracy."""
    import math

    from tl_bench.tracking.logged_models import find_models
    from tl_bench.tracking.names import MODEL_ID
    from tl_bench.tracking.model_registry import champion

    models = find_models(tracking_uri, dataset=dataset, study=study)
    place = f"dataset {dataset!r}" + (f" of study {study!r}" if study else "")
    if not models:
        from tl_bench.report.frame import check_scope

        check_scope(tracking_uri, study=study, dataset=dataset)  # a misspelled name: the ones that exist
        raise ModelNotFoundError(f"no kept model of {place}",
                                 "a dataset of a study run with keep_models best or top_k (see `tl-bench leaderboard`)")
    studies = sorted({m.study for m in models})
    if len(studies) > 1:
        raise ModelNotFoundError(f"dataset {dataset!r} has kept models in several studies", ", ".join(studies),
                                 lead="; choose one with --study or --spec: ")
    name = studies[0]
    if trial is not None:
        match = [m for m in models if m.trial == trial]
        if not match:
            raise ModelNotFoundError(f"trial {trial} of {place} holds no model",
                                     ", ".join(str(m.trial) for m in models), lead="; trials that do: ")
        return match[0], f"trial {trial}"
    version = champion(tracking_uri, f"{name}-{dataset}")
    if version is not None:
        for model in models:
            if model.model_id == version.tags.get(MODEL_ID):
                return model, f"champion, version {version.version} of {name}-{dataset}"
    best = min(models, key=lambda m: (-m.val_acc if not math.isnan(m.val_acc) else math.inf, m.trial))
    return best, "best kept model by val_acc (none registered)"


@app.command("export")
def export_command(
    spec: Optional[Path] = _SPEC,
    tracking_uri: Optional[str] = _URI,
    dataset: str = typer.Option(..., "--dataset", help="The dataset (its key in the study file)."),
    study: Optional[str] = typer.Option(None, "--study", help="The study (default with --spec: its name)."),
    trial: Optional[int] = typer.Option(None, "--trial", min=0, help="This trial's model (default: the champion)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (new or empty)."),
) -> None:
    """Write a kept model as an MLflow model folder, plus model.safetensors and config.json."""
    from tl_bench.tracking import require_store
    from tl_bench.tracking.loading import download_model

    uri, spec_study, _ = _store(tracking_uri, spec)
    require_store(uri)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"--out {out} is not an empty folder", "a new or empty folder")
    model, how = choose_model(uri, dataset=dataset, study=study or spec_study, trial=trial)
    download_model(uri, model.model_id, out, what=f"the kept model of trial {model.trial} ({how})")
    typer.echo(f"exported trial {model.trial} of {model.study} on {model.dataset} ({how}) to {out}")
    typer.echo(f"  with MLflow:    mlflow.pyfunc.load_model({str(out)!r})")
    typer.echo(f"  without MLflow: tl_bench.models.load_bundle({str(out)!r})  (model.safetensors + config.json)")
