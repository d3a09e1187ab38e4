"""A terminal bar of one pretraining's epochs (pretraining runs before any study, outside ``study``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def pretrain_progress(console: Console, label: str, epochs: int) -> Iterator[Callable[[int, dict[str, float]], None]]:
    """A bar of one pretraining's epochs (silent on a quiet console); yields the trainer's ``on_epoch``."""
    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=console.quiet,
        transient=False,
    )
    task = progress.add_task("pretrain", total=epochs, info="")

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        info = f"val_acc {metrics['val_acc']:.3f}" if "val_acc" in metrics else ""
        progress.update(task, completed=epoch, info=info)

    with progress:
        yield on_epoch


__all__ = ["pretrain_progress"]
