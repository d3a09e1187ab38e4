"""Paths and URLs in a study file resolve against the file's folder, never the current directory.

A study then means the same thing whichever folder a worker starts in. A study file reached through
a symbolic link resolves from the folder of the file it links to (``Path.resolve``), so every link to
one file names the same study, with the same ``runs/`` stores.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tl_bench.config import CHECKPOINT_SUFFIXES, Weights

WEIGHTS_ACCEPTED = (
    "scratch, pretrained, timm:TAG, local:NAME (declared under pretrain) "
    f"or a {'/'.join(CHECKPOINT_SUFFIXES)} file (relative to the study file)"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def resolve_path(text: str, base: Path) -> str:
    """An absolute, normalised path; relative ones are taken from ``base``."""
    path = Path(os.path.expanduser(text))
    return os.path.normpath(path if path.is_absolute() else base / path)


def absolute_weights_path(text: str, base: Path) -> str:
    """A weights choice as the runner receives it: a checkpoint path made absolute, the rest unchanged."""
    return resolve_path(text, base) if Weights.parse(text).kind == "file" else text


def resolve_dataset_name(name: str, base: Path) -> str:
    """``imagefolder:PATH`` with PATH made absolute; other registry names unchanged."""
    if name.startswith("imagefolder:") and name[len("imagefolder:"):]:
        return "imagefolder:" + resolve_path(name[len("imagefolder:"):], base)
    return name


def dataset_key(name: str) -> str:
    """Short, filesystem- and study-name-safe name of a dataset (``torchvision:CIFAR10`` -> ``CIFAR10``)."""
    tail = name.split(":", 1)[1] if ":" in name else name
    tail = tail.rstrip("/\\")
    tail = re.split(r"[/\\]", tail)[-1] or name
    return _UNSAFE.sub("_", tail).strip("._-") or "dataset"


def resolve_storage_url(url: str, base: Path) -> str:
    """SQLite URLs with a relative file become absolute; other database URLs are kept."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        rest = url[len(prefix):]
        if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
            return prefix + resolve_path(rest, base)
    return url


def resolve_tracking_uri(uri: str, base: Path) -> str:
    """A plain path to a ``.db`` file (``runs/mlflow.db``) becomes its ``sqlite:///`` URI; another plain
    path a ``file://`` URI; SQLite URLs resolve like storages; servers are kept."""
    if uri.startswith("sqlite:///"):
        return resolve_storage_url(uri, base)
    if _SCHEME.match(uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):  # a drive letter is a path
        return uri
    if Path(uri).suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{resolve_path(uri, base)}"
    return Path(resolve_path(uri, base)).as_uri()


def is_url(text: str) -> bool:
    return "://" in text and bool(_SCHEME.match(text))


__all__ = [
    "WEIGHTS_ACCEPTED",
    "absolute_weights_path",
    "dataset_key",
    "is_url",
    "resolve_dataset_name",
    "resolve_path",
    "resolve_storage_url",
    "resolve_tracking_uri",
]
