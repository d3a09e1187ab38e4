"""Digests of tensors and bytes: what a file records when written and is checked against when read.

Feature-cache entries, freeze-boundary activations and backbone checkpoints carry one, so a file
damaged after it was written (a flipped byte, a partial copy) is found instead of trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import torch


def hasher() -> "hashlib._Hash":
    # blake2b: as collision-safe as sha256 here and about twice as fast on
    # CPUs without SHA extensions; weights can be gigabytes.
    return hashlib.blake2b(digest_size=32)


def update_tensor(digest: "hashlib._Hash", tensor: torch.Tensor) -> None:
    """Feed ``tensor``'s shape, dtype and bytes (through a CPU copy when on a device) to ``digest``."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
    digest.update(flat.view(torch.uint8).numpy())


def tensor_digest(tensors: Iterable[torch.Tensor]) -> str:
    """Digest of the shapes, dtypes and bytes of ``tensors``, in order."""
    digest = hasher()
    for tensor in tensors:
        update_tensor(digest, tensor)
    return digest.hexdigest()


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """Digest of a state dict: every name with its tensor, in name order (a file's key order may differ)."""
    digest = hasher()
    for name in sorted(state):
        digest.update(name.encode() + b"\0")
        update_tensor(digest, state[name])
    return digest.hexdigest()


__all__ = ["hasher", "state_digest", "tensor_digest", "update_tensor"]
