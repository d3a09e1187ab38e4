"""A short digest naming exactly which items, labels and settings a study saw.

It covers the raw content of every item (pixels or file bytes), the class
names, the resolved options, the split settings and which item went where;
it does not depend on where the files live or on the process.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tl_bench.data.source import Source
from tl_bench.data.splits import Split

FINGERPRINT_VERSION = 1  # bump when the split protocol changes what a setting means


def fingerprint(
    dataset: str,
    source: Source,
    splits: dict[str, Split],
    settings: dict[str, Any],
) -> str:
    h = hashlib.sha256()
    header = {"version": FINGERPRINT_VERSION, "dataset": dataset, "classes": source.class_names, "settings": settings}
    h.update(json.dumps(header, sort_keys=True, default=str).encode())
    h.update(source.content.encode())
    for name in ("train", "val", "test"):
        split = splits[name]
        h.update(f"\n[{name}:{len(split)}]\n".encode())
        h.update("\n".join(split.ids).encode())
        h.update(split.labels.numpy().tobytes())
    return h.hexdigest()[:16]


__all__ = ["FINGERPRINT_VERSION", "fingerprint"]
