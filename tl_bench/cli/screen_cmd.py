"""``tl-bench screen SPEC``: rank the spec's (backbone, weights) candidates by transferability, in seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from tl_bench.cli.app import app, print_json


@app.command("screen")
def screen(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Study file whose candidates to screen."),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="Only these datasets (repeatable)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI for the screening runs."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object: {dataset: [candidates, best first]}."),
) -> None:
    """Score every (backbone, weights) candidate from its frozen features: LogME on the training
    split and k-nearest-neighbour accuracy on the validation split, each beside the data-free static
    rankers a score has to beat (the backbone's parameters, the probe's forward FLOPs). The features
    go to the feature cache, so later linear probes of the same candidates reuse them. Each dataset
    gets a screening run in MLflow."""
    from rich.console import Console
    from rich.table import Table

    from tl_bench.config import weights_label
    from tl_bench.screen import as_records, record_screening, screen_dataset, static_agreement
    from tl_bench.spec import load_spec
    from tl_bench.study.preflight import check_hub, checkpoint_resolver, dataset_fingerprint
    from tl_bench.study.screen import probe_config_for, screen_settings
    from tl_bench.tracking import Tracker
    from tl_bench.train import FeatureCache

    spec = load_spec(spec_path).with_overrides(tracking_uri=tracking_uri, datasets=dataset)
    settings = screen_settings(spec)
    score, keep = settings.score, settings.keep
    check_hub(spec)
    for ds in spec.datasets:
        dataset_fingerprint(ds, quiet=json_out)  # bad data fails here, before anything is recorded
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location)
    checkpoint_for = checkpoint_resolver(spec, tracker)
    cache = FeatureCache(Path(spec.cache_dir))
    results = {}
    console = Console()
    for ds in spec.datasets:
        start_ms = int(time.time() * 1000)
        ranked = screen_dataset(spec, config_for=probe_config_for(spec, ds, checkpoint_for), cache=cache, score=score)
        record_screening(tracker, spec, ds, ranked, score=score, keep=keep, start_ms=start_ms)
        results[ds.key] = as_records(ranked)
        if json_out:
            continue
        agreement = static_agreement(ranked)
        table = Table(title=f"Screening: {ds.key} (ranked by {score}{f', keep {keep}' if keep else ''}, "
                            f"features at the {settings.img_size} input size)",
                      caption=_agreement_caption(agreement))
        columns = ("rank", "backbone", "weights", "logme", "knn_acc", "params", "flops", "seconds")
        for column in columns:
            table.add_column(column, justify="left" if column in ("backbone", "weights") else "right")
        for c in ranked:  # tied candidates share a rank, and a tie at the cut is kept whole
            style = "dim" if keep is not None and c.rank > keep else None
            table.add_row(c.rank_label, c.backbone, weights_label(c.weights), f"{c.logme:.4f}", f"{c.knn:.4f}",
                          f"{c.params:,.0f}", f"{c.flops:.3g}", f"{c.seconds:.2f}", style=style)
        console.print(table)
        console.print("Whether a score beats the static rankers at predicting the search: a screened study's "
                      "summary logs screen.tau_<score> beside screen.tau_params and screen.tau_flops.")
    if json_out:
        print_json(results)


def _agreement_caption(agreement: dict[str, dict[str, float | None]]) -> str:
    """Each score's tau against each static ranker, as one line under the table."""
    def tau(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    return ("Kendall's tau of each score against the static rankers (near 1: it orders by size): "
            + "; ".join(f"{score}: " + ", ".join(f"{ranker} {tau(t)}" for ranker, t in taus.items())
                        for score, taus in agreement.items()))
