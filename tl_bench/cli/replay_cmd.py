"""``tl-bench replay SPEC --dataset D --sampler S [--pruner P] [--seeds N] [--budget-s SECONDS]``: another
search strategy simulated on a finished study's recorded curves and costs (``tl_bench.replay``).

The command is a plain function registered by ``cli/app.py``; this module imports nothing of the
CLI, so the app can import it without a cycle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def replay_command(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Study file (YAML) whose study has run."),
    dataset: str = typer.Option(..., "--dataset", help="The dataset (its key in the study file)."),
    sampler: str = typer.Option(..., "--sampler", help="The replayed sampler: tpe, random, grid, gp or qmc."),
    pruner: str = typer.Option("none", "--pruner", help="The replayed pruner: none, median, successive_halving "
                               "or hyperband (the study's options when it names the same one)."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Replays, seeded from the study's own sampler seed when "
                              "it is the same sampler (else from 0)."),
    budget_s: Optional[float] = typer.Option(None, "--budget-s", min=0.0, help="Simulated seconds each replay may "
                                             "spend (default: as many trials as the study ran)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout instead of the table."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: the spec's)."),
) -> None:
    """Simulate another sampler (and pruner) on a completely searched study's recorded per-epoch curves and
    costs, on CPU in seconds, and compare each strategy's simulated time to within one point of the best
    validation accuracy with the study's own."""
    from tl_bench.spec import load_spec

    spec = load_spec(spec_path).with_overrides(tracking_uri=tracking_uri)
    chosen = spec.dataset(dataset)

    from tl_bench.replay import print_report, read_table, recorded_search, replay_seeds, report_dict, summaries

    table = read_table(spec, chosen.key)
    replays = replay_seeds(table, spec, sampler=sampler, pruner=pruner, seeds=seeds, budget_s=budget_s)
    recorded = recorded_search(table, f"recorded {spec.sampler.name}+{spec.pruner.name}")
    rows = summaries(recorded, replays, table.best_val_acc)
    if as_json:
        sys.stdout.write(json.dumps(report_dict(spec.name, chosen.key, table.best_val_acc, rows), default=str) + "\n")
    else:
        print_report(spec.name, chosen.key, table.best_val_acc, rows)
