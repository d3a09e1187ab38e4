"""Writing a backbone's weights to a file that loads back as ``weights_path``.

Reading checkpoints is ``tl_bench.models.weights``; writing needs the built
``Backbone``, so it lives here, above both.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from tl_bench.config import CHECKPOINT_SUFFIXES
from tl_bench.errors import WeightsError
from tl_bench.models.backbone import Backbone
from tl_bench.models.model import TransferModel
from tl_bench.models.weights import SUFFIX_WORDS


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
    meta = {"backbone": backbone.name, **{str(k): str(v) for k, v in (metadata or {}).items()}}
    # clone: safetensors refuses tensors that share storage
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in backbone.model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path), metadata=meta)
    else:
        torch.save({"state_dict": state, "metadata": meta}, path)
    return path


__all__ = ["save_backbone_checkpoint"]
