"""Errors a user can cause. Each carries one line: what was wrong and what is accepted.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; no traceback.
``first_line`` is how an error raised by another library (timm, MLflow, SQLAlchemy,
PIL) enters such a line, and ``warn`` how a failure that must not stop the work
around it is reported.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable

from tl_bench.redact import redact


class TLBenchError(Exception):
    """Base class of every user-facing error; its message is one line.

    ``what`` says what was wrong and ``accepted`` what would have been right (or
    ``None``); callers that re-word an error (spec validation naming the field)
    read these fields instead of parsing the message. ``lead`` joins the two in
    the message: ``"; accepted: "`` unless the wording needs another
    (``"; accepted tags: "``, ``"; use "``). ``where``, when given, leads the
    message: the file and field a study error is about.
    """

    exit_code = 2

    def __init__(
        self, what: str, accepted: str | None = None, *, lead: str = "; accepted: ", where: str | None = None
    ) -> None:
        self.what, self.accepted, self.lead, self.where = what, accepted, lead, where
        message = what if accepted is None else f"{what}{lead}{accepted}"
        super().__init__(message if where is None else f"{where}: {message}")

    @property
    def lists_accepted(self) -> bool:
        """Whether the message says outright what is accepted (``accepted ...:``, ``known:``), as
        opposed to advice (``use ...``, ``write ...``)."""
        return self.accepted is not None and self.lead.lstrip("; :").startswith(("accepted", "known"))


class UnknownBackboneError(TLBenchError):
    """A backbone name that timm does not know."""


class UnknownNeckError(TLBenchError):
    """A neck name missing from the neck registry."""


class UnknownHeadError(TLBenchError):
    """A head name missing from the head registry."""


class FreezeDepthError(TLBenchError):
    """A freeze depth outside the backbone's range."""


class ModelBuildError(TLBenchError):
    """Parts that cannot be put together: an input size a backbone cannot take, a neck it cannot feed."""


class OutputError(TLBenchError):
    """A result (leaderboard, dashboard) that cannot be written or rendered as asked."""


class WeightsError(TLBenchError):
    """A weights choice that cannot be loaded (missing, corrupt or incompatible file, unknown tag)."""


class DatasetError(TLBenchError):
    """A dataset that cannot be loaded (unknown name, missing folder, empty, one class, too small)."""


class TrainingSetupError(TLBenchError):
    """A trial that cannot start: a device that is not there, nothing trainable, no epochs."""


class SpecError(TLBenchError):
    """A study file that does not validate; the message names the file and the field path.

    ``source`` is the file as the user named it and ``field`` the place in it
    (``space.backbones[0].name``, ``top level``, ``line 3, column 5``).
    """

    def __init__(
        self, what: str, accepted: str | None = None, *, source: str | None = None, field: str | None = None
    ) -> None:
        self.source, self.field = source, field
        where = ": ".join(part for part in (source, field) if part is not None) or None
        super().__init__(what, accepted, where=where)


class StorageError(TLBenchError):
    """An Optuna storage or MLflow tracking URI that cannot be reached or does not match."""


class ModelNotFoundError(TLBenchError):
    """A kept or registered model that is not there (no such trial model, version, alias or folder)."""


class NonFiniteLossError(TLBenchError):
    """Training produced a NaN or infinite loss."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(
            f"loss became {value} at epoch {epoch}, step {step}",
            "lower the learning rate or enable gradient clipping",
            lead=": ",
        )


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``choices`` to a misspelled ``value``, or ``""``.

    The one place every "did you mean" hint is worded: study fields, registry names, metrics,
    datasets, studies and option values.
    """
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    if not close:  # a different case only (``CIFAR10`` for ``cifar10``) is still a near miss
        close = [n for n in names if n.lower() == str(value).lower()][:1]
    return f" (did you mean {close[0]!r}?)" if close and close[0] != str(value) else ""


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of ``err``'s message (its type name when the message is empty), URL passwords
    hidden, cut to ``limit`` characters: foreign messages can run to pages (SQL, tracebacks of a server)
    and hold the URL they failed on."""
    lines = str(err).strip().splitlines()
    return redact(lines[0] if lines else type(err).__name__)[:limit]


def warn(what: str, err: BaseException) -> None:
    """One line on stderr: for failures that never fail a trial or a study (keeping or registering a model)."""
    sys.stderr.write(f"warning: {what}: {type(err).__name__}: {first_line(err)}\n")


__all__ = [
    "did_you_mean",
    "first_line",
    "warn",
    "TLBenchError",
    "UnknownBackboneError",
    "UnknownNeckError",
    "UnknownHeadError",
    "FreezeDepthError",
    "WeightsError",
    "ModelBuildError",
    "OutputError",
    "DatasetError",
    "SpecError",
    "TrainingSetupError",
    "StorageError",
    "ModelNotFoundError",
    "NonFiniteLossError",
]
