"""Freeze-boundary activations on disk, read back memory-mapped, within a size bound.

An entry is one split's activation at the freeze boundary (the input of the first trained stage),
one tensor of shape (items, ...) in the dtype the frozen pass produced: ``<key>.bin`` holds its raw
bytes, ``<key>.json`` its shape, dtype and what filling it cost (``FillCost``). Both are written to
temporary files and renamed into place, data first, so a reader that finds the description finds
the whole entry; two processes filling the same key write the same bytes and the last rename wins.
The description also records the digest of the bytes, checked the first time a process reads the
entry: a damaged entry is filled again (with one line saying so) instead of being trained on.

The activation is written batch by batch while it is computed and read back with
``torch.from_file`` (a private mapping), so neither filling nor training holds a split in process
memory: the operating system pages it in as batches are gathered. ``max_mb`` bounds the disk (and
so the page cache) the store uses; the least recently used entries give way to a new one, and an
entry larger than the bound is refused (``fits``), which the caller reports as its reason.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterable

import torch

from tl_bench.digest import hasher
from tl_bench.train.fill_cost import FillCost
from tl_bench.train.notices import warn_once

_MB = 2**20
log = logging.getLogger(__name__)
# (data file, size, mtime) of entries whose bytes this process found matching their digest
_verified: set[tuple[str, int, int]] = set()


class BoundaryStore:
    """Boundary activations keyed like feature-cache entries, under ``root`` (a private temporary
    folder when None, removed with the store)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tlb-boundary-") if root is None else None
        self.root = Path(self._tmp.name if self._tmp is not None else root)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self.stats = {"hits": 0, "computed": 0, "evicted": 0}

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.bin", self.root / f"{key}.json"

    def get(self, key: str) -> tuple[torch.Tensor, FillCost] | None:
        """The entry under ``key``, memory-mapped, with its recorded cost; None when absent or torn."""
        entry = self._read(key)
        if entry is not None:
            _touch(self._paths(key)[1])  # recently used: the last to give way
            with self._lock:
                self.stats["hits"] += 1
        return entry

    def _read(self, key: str) -> tuple[torch.Tensor, FillCost] | None:
        data, meta = self._paths(key)
        try:
            described = json.loads(meta.read_text())
            shape, dtype = tuple(int(n) for n in described["shape"]), getattr(torch, described["dtype"])
            cost = FillCost.from_json(json.dumps(described["cost"]))
            numel = int(torch.Size(shape).numel())
            if cost is None or data.stat().st_size != numel * torch.empty((), dtype=dtype).element_size():
                return None
            if not _intact(data, described.get("digest")):
                warn_once(log, f"boundary cache entry {data} is damaged (its digest does not match); filling it again")
                return None
            tensor = torch.from_file(str(data), shared=False, size=numel, dtype=dtype).view(shape)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return tensor, cost

    def fits(self, nbytes: int, max_mb: float) -> bool:
        return nbytes <= max_mb * _MB

    def put(
        self,
        key: str,
        batches: Iterable[torch.Tensor],
        measure: Any,
        *,
        max_mb: float,
        keep: Iterable[str] = (),
        describe: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, FillCost]:
        """Write the batches (the frozen pass, run while they are drawn) as the entry ``key``, first
        making room within ``max_mb`` (entries in ``keep`` stay); ``measure()`` is called after the
        last batch and returns the pass's ``FillCost``. Returns the entry read back memory-mapped."""
        self.root.mkdir(parents=True, exist_ok=True)
        data, meta = self._paths(key)
        shape: list[int] | None = None
        dtype = torch.float32
        digest = hasher()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                for batch in batches:
                    shape = [int(n) for n in batch.shape] if shape is None else [shape[0] + len(batch), *shape[1:]]
                    dtype = batch.dtype
                    _write(handle, batch, digest)
            cost = measure()
            assert shape is not None, "a split with no items has no boundary entry"
            self._make_room(os.path.getsize(tmp), max_mb, keep={key, *keep})
            os.replace(tmp, data)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        described = {"key": key, "shape": shape, "dtype": str(dtype).removeprefix("torch."),
                     "cost": json.loads(cost.to_json()), "digest": digest.hexdigest(), **(describe or {})}
        fd, tmp_meta = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(described, handle, default=str)
        os.replace(tmp_meta, meta)
        _touch(meta)
        written = data.stat()
        _verified.add((str(data), written.st_size, written.st_mtime_ns))  # just hashed while written
        with self._lock:
            self.stats["computed"] += 1
        entry = self._read(key)
        assert entry is not None
        return entry[0], cost

    def disk_mb(self) -> float:
        return sum(p.stat().st_size for p in self.root.glob("*.bin")) / _MB

    def _make_room(self, nbytes: int, max_mb: float, keep: set[str]) -> None:
        """Delete least recently used entries (not those in ``keep``) until ``nbytes`` more fit in
        ``max_mb``. A process still reading a deleted entry keeps its mapping (POSIX)."""
        entries = []
        for meta in self.root.glob("*.json"):
            data = meta.with_suffix(".bin")
            if meta.stem not in keep and data.is_file():
                entries.append((meta.stat().st_mtime_ns, meta, data))
        used = self.disk_mb() * _MB
        for _, meta, data in sorted(entries, key=lambda e: e[0]):
            if used + nbytes <= max_mb * _MB:
                break
            used -= data.stat().st_size
            meta.unlink(missing_ok=True)
            data.unlink(missing_ok=True)
            with self._lock:
                self.stats["evicted"] += 1


def _touch(path: Path) -> None:
    # an explicit time: the file system's own clock for writes can be coarser than the uses it orders
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def _write(handle: BinaryIO, batch: torch.Tensor, digest: Any) -> None:
    # raw bytes through a uint8 view: numpy has no bfloat16, the bytes are the same either way
    raw = batch.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
    digest.update(raw)
    handle.write(raw)


def _intact(data: Path, recorded: object) -> bool:
    """Whether the bytes of ``data`` have the digest recorded with them; read once per process and version
    of the file (an entry is read at every trial that uses it)."""
    info = data.stat()
    seen = (str(data), info.st_size, info.st_mtime_ns)
    if seen in _verified:
        return True
    digest = hasher()
    with open(data, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != recorded:
        return False
    _verified.add(seen)
    return True


__all__ = ["BoundaryStore"]
