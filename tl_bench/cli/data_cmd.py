"""``tl-bench list datasets`` and ``tl-bench inspect-data DATASET``."""

from __future__ import annotations

import time
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from tl_bench.cli.app import app, list_app, print_json
from tl_bench.errors import DatasetError


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise DatasetError(f"--option {pair!r} is not KEY=VALUE", "--option num_classes=5", lead="; e.g. ")
        # YAML scalars, as in a study file: 5 -> int, 0.2 -> float, true -> bool, null -> None.
        options[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return options


@list_app.command("datasets")
def list_datasets(json_out: bool = typer.Option(False, "--json", help="One JSON object instead of a table.")) -> None:
    """Datasets a study can name, with the options each accepts."""
    from tl_bench.data import DATASETS

    rows = [
        {"name": info.form, "description": info.description, "options": dict(info.options)}
        for info in DATASETS.values()
    ]
    if json_out:
        print_json({"datasets": rows})
        return
    table = Table("dataset", "description", "options (default)")
    for row in rows:
        table.add_row(row["name"], row["description"], ", ".join(f"{k}={v}" for k, v in row["options"].items()))
    Console().print(table)


@app.command("inspect-data")
def inspect_data(
    dataset: str = typer.Argument(..., metavar="DATASET", help="digits, shapes, imagefolder:PATH or torchvision:NAME."),
    img_size: int = typer.Option(32, "--img-size", help="Square size the images are resized to."),
    train_size: Optional[int] = typer.Option(None, "--train-size", help="Stratified limit on the training split."),
    val_size: Optional[int] = typer.Option(None, "--val-size", help="Validation items (default: the dataset's share)."),
    seed: int = typer.Option(0, "--seed", help="Split seed."),
    root: Optional[str] = typer.Option(None, "--root", help="Data root of torchvision datasets."),
    download: bool = typer.Option(False, "--download", help="Allow torchvision downloads."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Dataset option KEY=VALUE (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
) -> None:
    """Load a dataset as a study would and show its splits, classes, fingerprint and skipped files."""
    from tl_bench.data import load_dataset

    started = time.perf_counter()
    ds = load_dataset(
        dataset,
        img_size=img_size,
        train_size=train_size,
        val_size=val_size,
        seed=seed,
        root=root,
        download=download,
        **_parse_options(option or []),
    )
    seconds = time.perf_counter() - started
    counts = {name: split.class_counts(ds.num_classes) for name, split in ds.splits.items()}
    if json_out:
        print_json(
            {
                "dataset": ds.name,
                "num_classes": ds.num_classes,
                "class_names": ds.class_names,
                "train": len(ds.train),
                "val": len(ds.val),
                "test": len(ds.test),
                "class_counts": counts,
                "fingerprint": ds.fingerprint,
                "skipped": ds.skipped,
                "img_size": ds.img_size,
                "in_memory": all(split.in_memory for split in ds.splits.values()),
                "options": ds.options,
                "load_time_s": round(seconds, 3),
            }
        )
        return
    console = Console()
    console.print(
        f"[bold]{ds.name}[/]: {ds.num_classes} classes, train {len(ds.train)}, val {len(ds.val)}, "
        f"test {len(ds.test)}, {ds.img_size}px, fingerprint {ds.fingerprint} ({seconds:.1f} s)"
    )
    table = Table("class", "train", "val", "test")
    for k, name in enumerate(ds.class_names):
        table.add_row(name, *(str(counts[split][k]) for split in ("train", "val", "test")))
    console.print(table)
    if ds.skipped:
        console.print(f"[yellow]{len(ds.skipped)} files skipped:[/]")
        for line in ds.skipped:
            console.print(f"  {line}", markup=False)


__all__ = ["inspect_data", "list_datasets"]
