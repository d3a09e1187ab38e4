"""Hostile files in an image folder: a named pipe, a link to ``/dev/zero``, a file past the size bound,
an image of too many pixels. Each is left out with its reason, never read; the folder loads at once.

``tl-bench inspect-data`` runs in a subprocess with a time limit and a memory limit, so a regression
(a reader blocked on the pipe, or reading ``/dev/zero`` until memory runs out) fails the test
instead of hanging it or exhausting the machine. ``tl-bench run`` loads folders the same way.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tl_bench.data.images import MAX_FILE_BYTES

LIMIT_S = 90
MEMORY_BYTES = 6 << 30  # address space of the command: loading a small folder needs far less


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def inspect(folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "tl_bench", "inspect-data", f"imagefolder:{folder}", "--json"],
                          capture_output=True, text=True, timeout=LIMIT_S, preexec_fn=_limited)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _folder(root: Path) -> Path:
    for k, name in enumerate(("cat", "dog")):
        for i in range(3):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 12), (40 + 80 * k, i, 0)).save(root / name / f"{i}.png")
    return root


def test_a_named_pipe_in_a_class_folder_is_skipped_not_waited_on(tmp_path: Path) -> None:
    root = _folder(tmp_path / "images")
    os.mkfifo(root / "cat" / "pipe.png")  # nothing ever writes to it: opening it to read blocks for ever
    loaded = inspect(root)
    assert loaded["train"] + loaded["val"] + loaded["test"] == 6
    assert loaded["skipped"] == ["cat/pipe.png: not a regular file (a named pipe)"]


def test_a_device_link_a_huge_file_and_a_giant_image_are_skipped_with_their_reasons(tmp_path: Path, files) -> None:
    root = _folder(tmp_path / "images")
    (root / "dog" / "zero.png").symlink_to("/dev/zero")  # endless bytes: read whole, memory runs out
    with open(root / "dog" / "huge.png", "wb") as handle:  # sparse: takes no disk
        handle.truncate(MAX_FILE_BYTES + 1)
    files.write_giant_png(root / "cat" / "giant.png")
    loaded = inspect(root)
    assert loaded["train"] + loaded["val"] + loaded["test"] == 6
    assert sorted(loaded["skipped"]) == [
        "cat/giant.png: image too large (12000x12000 = 144,000,000 pixels; at most 89,478,485 are decoded, "
        "PIL.Image.MAX_IMAGE_PIXELS)",
        f"dog/huge.png: file too large ({MAX_FILE_BYTES + 1:,} bytes; at most {MAX_FILE_BYTES:,} are read)",
        "dog/zero.png: not a regular file (a character device)",
    ]
