"""What a dataset study is: everything that changes what one of its trials measures.

A stored study is continued only by a study file that gives the same identity, so that its
champion is picked among trials that can be compared. The identity holds, per section:

- ``space``: the search space (checkpoint files relative to the study file's folder);
- ``fixed``: the fixed TrialConfig values, less those at their default and the cache settings
  (``use_cache``, ``boundary_cache_mb``) that change no result;
- ``dataset``: the dataset's name, size, resolution, split and options, without where its files live;
  ``dataset.content``: its fingerprint (images, class names and which item went to which split);
- ``objective``, ``constraints`` and ``latency`` (how the values Optuna ranks are measured);
- ``pretrain``: the definition of each ``local:NAME`` the space names (its checkpoint is named by it).

Not in it: the name, description, budget, sampler, pruner, baselines, stores, workers and what
happens around the trials (screening, warm start, kept models, promotion).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import reprlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from tl_bench.config import DataSettings, TrialConfig, Weights

if TYPE_CHECKING:
    from tl_bench.spec.sections import DatasetSpec

StudySpec = Any  # tl_bench.spec.study.StudySpec, which builds its identity here (it imports this module)

# Fixed fields that decide how a trial runs from cache, never what it measures.
_NOT_MEASURED = frozenset({"use_cache", "boundary_cache_mb"})
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialConfig) if f.default is not dataclasses.MISSING}
_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 40, 40, 6, 4


@dataclass(frozen=True)
class Change:
    """One field of a study's identity that differs from what the stored study was made with."""

    field: str  # dotted, from the section: ``dataset.train_size``, ``fixed.epochs``, ``space.neck``
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.field} {_shown(self.before)} -> {_shown(self.after)}"


def _shown(value: Any) -> str:
    return "(not set)" if value is _ABSENT else _SHOW.repr(value)


_ABSENT = object()
CONTENT = "dataset.content"  # the identity's entry for the loaded dataset's fingerprint


def space_section(spec: StudySpec) -> dict[str, Any]:
    """The search space as plain values; checkpoint files relative to the spec's folder, so that
    moving the whole folder keeps it."""
    base = spec.source_path.parent
    space = spec.space.model_dump(mode="json")
    for backbone in space["backbones"]:
        backbone["weights"] = [
            os.path.relpath(w, base) if Weights.parse(w).kind == "file" else w for w in backbone["weights"]
        ]
    space["hyper"] = {k: [type(v).__name__, v.model_dump(mode="json")] for k, v in spec.space.hyper.items()}
    return space


def space_digest(spec: StudySpec) -> str:
    """Short hash of the search space (what stores of earlier versions recorded as the study's identity)."""
    return hashlib.sha256(json.dumps(space_section(spec), sort_keys=True).encode()).hexdigest()[:16]


def data_section(settings: DataSettings) -> dict[str, Any]:
    """A dataset as it decides what is measured: its name (``imagefolder`` without the folder), size,
    resolution, split and options; where its files live and whether they may be downloaded are left out."""
    name = "imagefolder" if settings.dataset.startswith("imagefolder:") else settings.dataset
    return {"name": name, "img_size": settings.img_size, "train_size": settings.train_size,
            "val_size": settings.val_size, "split_seed": settings.split_seed,
            "options": _plain(settings.dataset_options)}


def study_identity(spec: StudySpec, dataset: DatasetSpec, fingerprint: str | None = None) -> dict[str, Any]:
    """The identity of the dataset study of ``spec`` on ``dataset`` (see the module docstring);
    ``fingerprint`` is the loaded dataset's, left out when not known."""
    fixed = {k: v for k, v in _plain(spec.fixed).items()
             if k not in _NOT_MEASURED and not (k in _DEFAULTS and _plain(_DEFAULTS[k]) == v)}
    local = sorted({Weights.parse(w).name for b in spec.space.backbones for w in b.weights
                    if Weights.parse(w).kind == "local"})
    pretrain = {}
    for name in local:
        if name in spec.pretrain:
            entry = spec.pretrain[name]
            pretrain[name] = {**entry.model_dump(mode="json", exclude={"dataset"}),
                              "dataset": data_section(entry.dataset.data_settings)}
    identity: dict[str, Any] = {
        "space": space_section(spec),
        "fixed": fixed,
        "dataset": data_section(dataset.data_settings),
        "objective": spec.objective.model_dump(mode="json"),
        "constraints": _plain(spec.model_dump(mode="json", include={"constraints"})["constraints"]),
        "latency": _plain(spec.latency.config_fields()),
        "pretrain": pretrain,
    }
    if fingerprint is not None:
        identity[CONTENT] = fingerprint
    return identity


def identity_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[Change]:
    """The fields in which ``current`` differs from ``recorded``. A section recorded by only one of them
    (a store written before the section was part of the identity, a fingerprint not computed) is not
    compared."""
    changes: list[Change] = []
    for section in current:
        if section in recorded:
            changes += _diff(section, recorded[section], current[section])
    if any(c.field.startswith("dataset.") and c.field != CONTENT for c in changes):
        changes = [c for c in changes if c.field != CONTENT]  # a changed setting changes the content: say it once
    return changes


def _diff(path: str, before: Any, after: Any) -> list[Change]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            found += _diff(f"{path}.{key}", before.get(key, _ABSENT), after.get(key, _ABSENT))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after) \
            and any(isinstance(v, dict) for v in before):
        found = []
        for index, (old, new) in enumerate(zip(before, after)):
            found += _diff(f"{path}[{index}]", old, new)
        return found
    return [] if before == after else [Change(path, before, after)]


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists, keys as text), so that what was recorded
    in a store compares equal to what is computed now."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


__all__ = ["Change", "data_section", "identity_changes", "space_digest", "space_section", "study_identity"]
