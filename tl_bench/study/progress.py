"""Progress display for long studies: trials done, best so far, current trial's epoch, and a line for each
distinct error a trial of this run failed with (once, however many trials fail with it)."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tl_bench.config import weights_label
from tl_bench.study.states import FINISHED
from tl_bench.study.storage import ERROR_ATTR, SURPLUS

# Libraries whose log lines (Optuna's "A new study created ...", MLflow's warnings, a hub download's
# retries) would otherwise be written straight to the stream their handler captured, in the middle of the
# live display.
LIBRARY_LOGGERS = ("optuna", "mlflow", "huggingface_hub")


class StudyProgress:
    """A rich progress bar per dataset study; silent when ``quiet``."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[dataset]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("{task.fields[current]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet,
            transient=False,
        )
        self._tasks: dict[str, tuple[Any, optuna.Study | None]] = {}
        self._saved_handlers: list[tuple[logging.Logger, list[logging.Handler]]] = []
        self._handler: logging.Handler | None = None
        self._current: str | None = None
        self._seen_failed: set[tuple[str, int]] = set()  # (study, trial) already looked at
        self._errors: set[str] = set()  # the errors already shown

    def __enter__(self) -> "StudyProgress":
        self.progress.__enter__()
        if not self.quiet:
            self._route_library_logs()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.progress.__exit__(*exc)
        finally:
            self._restore_library_logs()

    def _route_library_logs(self) -> None:
        """While the display is live, library log lines go through its console: each prints on its
        own line above the bars instead of being glued to them."""
        self._handler = RichHandler(console=self.console, show_time=False, show_path=False, markup=False)
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved_handlers.append((logger, logger.handlers[:]))
            logger.handlers = [self._handler]

    def _restore_library_logs(self) -> None:
        for logger, handlers in self._saved_handlers:
            if logger.handlers == [self._handler]:  # unless the library configured itself again meanwhile
                logger.handlers = handlers
        self._saved_handlers = []

    def start(self, dataset: str, study: optuna.Study | None, total: int | None) -> None:
        """Show a dataset study; ``study`` may come later through ``attach``."""
        task = self.progress.add_task("study", total=total, dataset=dataset, best="-", current="")
        self._tasks[dataset] = (task, study)
        self._current = dataset
        if study is not None:
            self._earlier_failures(study)
        self.refresh()

    def attach(self, dataset: str, study: optuna.Study) -> None:
        task, _ = self._tasks[dataset]
        self._tasks[dataset] = (task, study)
        self._earlier_failures(study)
        self.refresh()

    def _earlier_failures(self, study: optuna.Study) -> None:
        """Trials that failed before this run are not shown again."""
        if not self.quiet:
            self._seen_failed |= {(study.study_name, t.number)
                                  for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}

    def refresh(self) -> None:
        """Re-read trial counts and the best value of every shown study from the storage."""
        if self.quiet:  # nothing is shown: nothing to read
            return
        for task, study in self._tasks.values():
            if study is None:
                continue
            trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.FAIL))
            values = [t.values[0] for t in trials if t.state == TrialState.COMPLETE and t.values]
            best = f"{max(values):.4f}" if values else "-"
            self.progress.update(task, completed=sum(t.state in FINISHED for t in trials), best=best)
            self._show_failures(study, [t for t in trials if t.state == TrialState.FAIL])

    def _show_failures(self, study: optuna.Study, failed: list[optuna.trial.FrozenTrial]) -> None:
        """One line per distinct error a trial of this run failed with, the first time it is seen (as Optuna
        warns of a failed trial; the MLflow runs and ``tl-bench doctor`` list every one)."""
        for trial in failed:
            if (study.study_name, trial.number) in self._seen_failed:
                continue
            self._seen_failed.add((study.study_name, trial.number))
            error = str(trial.user_attrs.get(ERROR_ATTR) or "no error recorded")
            if error == SURPLUS or error in self._errors:
                continue
            self._errors.add(error)
            self.console.print(f"trial {trial.number} of {study.study_name} failed: {error}", markup=False,
                               highlight=False, soft_wrap=True)

    def on_progress(self, info: dict[str, Any]) -> None:
        """Per-epoch callback of the trial running in this process."""
        if self._current is None or self.quiet:
            return
        config = info.get("config")
        label = f"trial {info['trial']}"
        if config is not None:
            weights = weights_label(config.weights)
            label += f": {config.backbone} {weights} f{config.freeze_depth} {config.neck}/{config.head}"
            label += f" epoch {info.get('epoch', 0)}/{config.epochs}"
        self.progress.update(self._tasks[self._current][0], current=label)
        if info.get("epoch", 0) == 0:
            self.refresh()

    def finish(self) -> None:
        self.refresh()
        for task, _ in self._tasks.values():
            self.progress.update(task, current="done")


__all__ = ["StudyProgress"]
