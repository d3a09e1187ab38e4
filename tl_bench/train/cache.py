"""Frozen-backbone features computed once and reused across epochs, trials and processes.

An entry is the list of tensors ``model.extract_feat`` returns for a whole
split, keyed by a hash of everything that determines them. Entries live in
a per-instance in-memory LRU (shared by the trials that receive the same
instance) and, when ``root`` is given, as safetensors files on disk. Disk
writes go to a temporary file that is then renamed over the final name, so
two processes writing the same key never leave a torn file: the last rename
wins and both wrote the same content.

An entry on disk records the digest of its tensors, checked when it is read: a
damaged file (a flipped byte, a partial copy) is computed again, and replaced,
with one line saying so, instead of being trained on. The disk copy is optional:
when it cannot be written (the disk is full, read-only), the entry stays in
memory and one line says the copies are skipped.

Each entry records what computing it cost (``FillCost``: seconds, FLOPs, peak
memory of the backbone pass). Every trial that uses the entry is charged that
record, whether it computed the entry or found it, so a trial's cost does not
depend on which trial happened to come first.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as to_safetensors

from tl_bench.digest import hasher, tensor_digest
from tl_bench.errors import first_line
from tl_bench.train.boundary_store import BoundaryStore
from tl_bench.train.fill_cost import FillCost
from tl_bench.train.notices import warn_once

# bump when the meaning of a stored entry changes (2: entries carry their FillCost; 3: and their digest)
_FORMAT = "3"
_COST_KEY = "fill_cost"  # safetensors metadata key of an entry's FillCost (JSON)
_DIGEST_KEY = "digest"  # safetensors metadata key of the digest of an entry's tensors
# Write failures that leave an entry in memory only: the disk copy is a convenience.
_SKIPPABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
log = logging.getLogger(__name__)
Features = list[torch.Tensor]


def feature_key(parts: dict[str, Any]) -> str:
    """Stable hex digest of the values that determine a split's features."""
    blob = json.dumps({"format": _FORMAT, **parts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


_file_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike[str]) -> str:
    """Digest of a file's content, remembered per (path, size, mtime) within the process."""
    stat = os.stat(path)
    memo = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _file_digests:
        digest = hasher()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
        _file_digests[memo] = digest.hexdigest()
    return _file_digests[memo]


def _nbytes(features: Features) -> int:
    return sum(t.numel() * t.element_size() for t in features)


class FeatureCache:
    """Per-split backbone features, in memory (LRU, ``max_memory_mb``) and optionally on disk under ``root``."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, max_memory_mb: float | None = 4096) -> None:
        self.root = Path(root) if root is not None else None
        self.max_memory_bytes = None if max_memory_mb is None else int(max_memory_mb * 2**20)
        self._memory: OrderedDict[str, tuple[Features, FillCost | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "computed": 0}
        self._boundary: Any = None

    @property
    def boundary(self) -> BoundaryStore:
        """Freeze-boundary activations of partly frozen trials, beside these entries (``boundary/``
        under ``root``; a temporary folder of this instance without one), shared like them."""
        if self._boundary is None:
            self._boundary = BoundaryStore(self.root / "boundary" if self.root is not None else None)
        return self._boundary

    def path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{key}.safetensors"

    def __contains__(self, key: str) -> bool:
        path = self.path(key)
        return key in self._memory or (path is not None and path.is_file())

    def __len__(self) -> int:
        return len(self._memory)

    def keys(self) -> list[str]:
        """Keys held in memory, least recently used first."""
        with self._lock:
            return list(self._memory)

    def get(self, key: str) -> Features | None:
        """Features stored under ``key`` (memory first, then disk), or None."""
        entry = self.get_entry(key)
        return None if entry is None else entry[0]

    def get_entry(self, key: str) -> tuple[Features, FillCost | None] | None:
        """Features stored under ``key`` with the cost recorded when they were computed, or None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.stats["memory_hits"] += 1
                return self._memory[key]
        entry = self._load(key)
        if entry is not None:
            self.stats["disk_hits"] += 1
            self._remember(key, *entry)
        return entry

    def put(
        self, key: str, features: Features, describe: dict[str, Any] | None = None, cost: FillCost | None = None
    ) -> None:
        """Store CPU copies of ``features`` (and what computing them cost) in memory and, with a root,
        atomically on disk (skipped, with one line, when the disk cannot take it)."""
        features = [t.detach().to("cpu") for t in features]
        self._remember(key, features, cost)
        if self.root is not None:
            try:
                self._save(key, features, describe or {}, cost)
            except OSError as err:
                if err.errno not in _SKIPPABLE:
                    raise
                warn_once(log, f"feature cache: entries are kept in memory only, their disk copies under {self.root} "
                               f"are skipped ({err.strerror or err})")

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], tuple[Features, FillCost]],
        describe: dict[str, Any] | None = None,
    ) -> tuple[Features, FillCost, bool]:
        """Cached features for ``key`` with their recorded cost, computing and storing both on a miss;
        the flag says computed. An entry without a recorded cost is computed again."""
        entry = self.get_entry(key)
        if entry is not None and entry[1] is not None:
            return entry[0], entry[1], False
        features, cost = compute()
        self.stats["computed"] += 1
        self.put(key, features, describe, cost)
        return features, cost, True

    def _remember(self, key: str, features: Features, cost: FillCost | None) -> None:
        with self._lock:
            self._memory[key] = (features, cost)
            self._memory.move_to_end(key)
            if self.max_memory_bytes is None:
                return
            total = sum(_nbytes(f) for f, _ in self._memory.values())
            while total > self.max_memory_bytes and self._memory:
                _, (evicted, _) = self._memory.popitem(last=False)
                total -= _nbytes(evicted)

    def _load(self, key: str) -> tuple[Features, FillCost | None] | None:
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                features = [handle.get_tensor(f"feat_{i}") for i in range(len(handle.keys()))]
            damage = None if metadata.get(_DIGEST_KEY) == tensor_digest(features) else "its digest does not match"
        except (SafetensorError, OSError) as err:
            damage = f"{type(err).__name__}: {first_line(err)}"
        if damage is not None:
            # A damaged entry is a miss: the recomputed one replaces it.
            warn_once(log, f"feature cache entry {path} is damaged ({damage}); computing it again")
            return None
        return features, FillCost.from_json(metadata.get(_COST_KEY))

    def _save(self, key: str, features: Features, describe: dict[str, Any], cost: FillCost | None) -> None:
        assert self.root is not None
        self.root.mkdir(parents=True, exist_ok=True)
        tensors = {f"feat_{i}": t.contiguous() for i, t in enumerate(features)}
        metadata = {"key": key, **{k: json.dumps(v, default=str) for k, v in describe.items()},
                    _DIGEST_KEY: tensor_digest(features)}
        if cost is not None:
            metadata[_COST_KEY] = cost.to_json()
        # Serialised here and written by Python: a full disk is then an OSError with its errno
        # (safetensors' own file writer reports it as a SafetensorError with the errno in its text).
        blob = to_safetensors(tensors, metadata=metadata)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


__all__ = ["FeatureCache", "FillCost", "feature_key", "file_digest", "tensor_digest"]
