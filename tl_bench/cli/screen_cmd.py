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
    split and k-nearest-neighbour accuracy on the validation split. The features go to the feature
    cache, so later linear probes of the same candidates reuse them. Each dataset gets a screening
    run in MLflow."""
    from rich.console import Console
    from rich.table import Table

    from tl_bench.screen import as_records, record_screening, screen_dataset
    from tl_bench.spec import load_spec
    from tl_bench.study.screen import probe_config_for
    from tl_bench.study.preflight import checkpoint_resolver, dataset_fingerprint
    from tl_bench.tracking import Tracker
    from tl_bench.train import FeatureCache

    spec = load_spec(spec_path).with_overrides(tracking_uri=tracking_uri, datasets=dataset)
    score = spec.screen.score if spec.screen is not None else "logme"
    keep = spec.screen.keep if spec.screen is not None else None
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
        table = Table(title=f"Screening: {ds.key} (ranked by {score}{f', keep {keep}' if keep else ''})")
        for column in ("rank", "backbone", "weights", "logme", "knn_acc", "seconds"):
            table.add_column(column, justify="right" if column in ("rank", "logme", "knn_acc", "seconds") else "left")
        for c in ranked:  # tied candidates share a rank, and a tie at the cut is kept whole
            style = "dim" if keep is not None and c.rank > keep else None
            table.add_row(c.rank_label, c.backbone, c.weights, f"{c.logme:.4f}", f"{c.knn:.4f}", f"{c.seconds:.2f}",
                          style=style)
        console.print(table)
    if json_out:
        print_json(results)
