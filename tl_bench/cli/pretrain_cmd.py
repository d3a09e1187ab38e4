"""``tl-bench pretrain SPEC``: train the spec's local source checkpoints ahead of a study."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tl_bench.cli.app import app, print_json
from tl_bench.config import Weights
from tl_bench.errors import TLBenchError, did_you_mean


@app.command("pretrain")
def pretrain(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Study file whose pretrain: section to train."),
    name: Optional[list[str]] = typer.Option(None, "--name", help="Only these pretrain entries (repeatable)."),
    backbone: Optional[list[str]] = typer.Option(None, "--backbone", help="Only these backbones (repeatable)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI for the pretraining runs."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object: {local:NAME: {backbone: path}}."),
) -> None:
    """Pretrain each backbone that lists local:NAME weights (skipped when its checkpoint exists)."""
    from tl_bench.pretrain import checkpoint_metadata, ensure_pretrained
    from tl_bench.spec import load_spec
    from tl_bench.tracking import Tracker

    spec = load_spec(spec_path).with_overrides(tracking_uri=tracking_uri)
    for option, given, known, noun in (("--name", name, list(spec.pretrain), "pretrain entry"),
                                       ("--backbone", backbone, [b.name for b in spec.space.backbones], "backbone")):
        for value in given or []:
            if value not in known:
                what = f"{option} {value!r} is not a {noun} of {spec_path}{did_you_mean(value, known)}"
                raise TLBenchError(what, ", ".join(known) or "none")
    tracker = Tracker(spec.tracking_uri, spec.name, artifact_location=spec.artifact_location)
    done: dict[str, dict[str, str]] = {}
    for entry in spec.space.backbones:
        if backbone and entry.name not in backbone:
            continue
        for weights in entry.weights:
            parsed = Weights.parse(weights)
            source = parsed.name if parsed.kind == "local" else None
            if source is None or (name and source not in name):
                continue
            path = ensure_pretrained(spec, source, entry.name, tracker=tracker, quiet=json_out)
            done.setdefault(weights, {})[entry.name] = str(path)
    if json_out:
        print_json(done)
    elif not done:
        typer.echo("nothing to pretrain: no backbone lists local:NAME weights")
    else:
        for weights, paths in done.items():
            for bb, path in paths.items():
                meta = checkpoint_metadata(path)
                accuracy = f"source test_acc {float(meta.get('source_test_acc', 'nan')):.3f}"
                typer.echo(f"{weights:16s} {bb:24s} {accuracy}  {path}")
