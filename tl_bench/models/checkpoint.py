"""Writing a backbone's weights to a file that loads back as ``weights_path``, and checking one whole.

Reading checkpoints is ``tl_bench.models.weights``; writing needs the built
``Backbone``, so it lives here, above both. A written checkpoint records the
digest of its tensors (``DIGEST_KEY`` in its metadata); ``verify_checkpoint``
reads every tensor and checks it, so a truncated or damaged file is refused in
one line before any trial starts instead of failing every trial.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tl_bench.config import CHECKPOINT_SUFFIXES
from tl_bench.digest import state_digest
from tl_bench.errors import WeightsError
from tl_bench.models.backbone import Backbone
from tl_bench.models.model import TransferModel
from tl_bench.models.weights import SUFFIX_WORDS

DIGEST_KEY = "weights_digest"  # metadata key of the digest of a checkpoint's tensors (tl_bench.digest.state_digest)
DAMAGED_WORDS = "a complete checkpoint: delete the file (a local:NAME one is then pretrained again) or write it anew"
_verified: set[tuple[str, int, int]] = set()  # (path, size, mtime) of files found whole in this process


def save_backbone_checkpoint(
    model: TransferModel | Backbone, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write the backbone's weights only: ``.safetensors`` (with metadata) or ``.pth``/``.pt``.

    Keys are the timm model's own, so the file loads as ``weights_path`` into
    any backbone of the same name.
    """
    backbone = model.backbone if isinstance(model, TransferModel) else model
    if not isinstance(backbone, Backbone):
        raise TypeError(f"expected a TransferModel or Backbone, got {type(model).__name__}")
    path = Path(path)
    if not str(path).endswith(CHECKPOINT_SUFFIXES):
        raise WeightsError(f"checkpoint path {str(path)!r} must end in {SUFFIX_WORDS}")
    # clone: safetensors refuses tensors that share storage
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in backbone.model.state_dict().items()}
    meta = {"backbone": backbone.name, **{str(k): str(v) for k, v in (metadata or {}).items()},
            DIGEST_KEY: state_digest(state)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path), metadata=meta)
    else:
        torch.save({"state_dict": state, "metadata": meta}, path)
    return path


def verify_checkpoint(path: str | Path) -> None:
    """WeightsError in one line when the checkpoint file cannot be read whole, or its tensors do not
    match the digest recorded when it was written (files without one are only read). Each version of
    a file (path, size, time) is read once per process."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        raise WeightsError(f"checkpoint {str(path)!r} cannot be read ({err.strerror})", DAMAGED_WORDS) from None
    seen = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if seen in _verified:
        return
    try:
        state, metadata = _read_whole(path)
    except Exception as err:  # safetensors, pickle and zip readers each raise their own types
        why = textwrap.shorten(" ".join(str(err).split()) or "unreadable", 160, placeholder=" ...")
        raise WeightsError(f"checkpoint {str(path)!r} is damaged ({type(err).__name__}: {why})",
                           DAMAGED_WORDS) from None
    recorded = metadata.get(DIGEST_KEY)
    if recorded is not None and recorded != state_digest(state):
        raise WeightsError(f"checkpoint {str(path)!r} is damaged (its tensors do not match the digest recorded "
                           "when it was written)", DAMAGED_WORDS)
    _verified.add(seen)


def _read_whole(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every tensor of the file and its metadata (a torch file written here keeps it beside ``state_dict``)."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        metadata = loaded.get("metadata")
        return loaded["state_dict"], metadata if isinstance(metadata, dict) else {}
    return (loaded if isinstance(loaded, dict) else {}), {}


__all__ = ["DIGEST_KEY", "save_backbone_checkpoint", "verify_checkpoint"]
