"""What a Ctrl-C or SIGTERM interrupted, carried on the exception up to the command that reports it.

``during(what)`` names a stage of a run (pretraining, a trial, a study's summary); the innermost
stage an interrupt passes through is kept, and a trial that recorded the interrupt as its failure
says so (``mark(..., trial_failed=True)``). ``interrupt_line`` is the one line ``tl-bench run``
prints, true whichever moment the signal came at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_ATTR = "tlb_interrupted"


@dataclass(frozen=True)
class Interrupted:
    what: str  # "trial 3 of rel/digits", "the summary of rel/digits", "pretraining"
    kind: str = "stage"  # "trial", "summary" or any other "stage"
    trial_failed: bool = False  # the trial recorded the interrupt as its failure in Optuna and MLflow


def mark(err: BaseException, what: str, *, kind: str = "stage", trial_failed: bool = False) -> None:
    """Record on ``err`` what it interrupted, unless a stage inside this one did already."""
    if not isinstance(getattr(err, _ATTR, None), Interrupted):
        setattr(err, _ATTR, Interrupted(what, kind, trial_failed))


@contextmanager
def during(what: str, *, kind: str = "stage") -> Iterator[None]:
    """A stage of the run: an interrupt raised inside it is marked with ``what``."""
    try:
        yield
    except KeyboardInterrupt as err:
        mark(err, what, kind=kind)
        raise


def interrupted(err: BaseException) -> Interrupted | None:
    found = getattr(err, _ATTR, None)
    return found if isinstance(found, Interrupted) else None


def interrupt_line(err: BaseException) -> str:
    """What was interrupted and what the stores hold for it, in one line."""
    found = interrupted(err)
    if found is None:
        return "interrupted between trials: no trial was running, none was recorded as failed"
    if found.trial_failed:
        return f"interrupted: {found.what} was recorded as failed in Optuna and MLflow"
    if found.kind == "trial":
        return (f"interrupted during {found.what} before it was recorded: the next tl-bench run (or tl-bench "
                "doctor --repair) records it as failed")
    if found.kind == "summary":
        return (f"interrupted during {found.what}: every trial had ended, none was recorded as failed; the next "
                "tl-bench run (or tl-bench doctor --repair) finishes the summary and the champion")
    return f"interrupted during {found.what}: no trial was running, none was recorded as failed"


__all__ = ["Interrupted", "during", "interrupt_line", "interrupted", "mark"]
