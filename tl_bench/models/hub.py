"""Whether the Hugging Face hub can give a study its weights: asked once, before anything is loaded.

timm downloads hub weights (``pretrained``, ``timm:TAG``) when a model is first built. With the hub
out of reach, each trial would wait through huggingface_hub's retries (minutes) and then fail.
``check_hub`` asks once instead: the hub endpoint (``HF_ENDPOINT``) must answer a HEAD request within
``TL_BENCH_HUB_TIMEOUT_S`` seconds (default 2; ``HF_HUB_OFFLINE=1`` means it does not). When it does
not, weights missing from the local cache end the command with one line naming them and what works
offline; weights all in the cache are then read from it in huggingface_hub's offline mode, so no
trial waits on retries. Scratch, checkpoint-file and ``local:NAME`` weights never ask.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tl_bench.config import Weights
from tl_bench.errors import WeightsError, first_line
from tl_bench.models.weights import SUFFIX_WORDS, check_hub_tag

TIMEOUT_ENV = "TL_BENCH_HUB_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 2.0
OFFLINE_ENV = "HF_HUB_OFFLINE"
# the files timm asks the hub for when a model's config names none: safetensors first, as timm does
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")
OFFLINE_CHOICES = (f"use weights 'scratch', a checkpoint file ({SUFFIX_WORDS}) or 'local:NAME' with a pretrain "
                   "section, or connect once so that the local Hugging Face cache holds them")


@dataclass(frozen=True)
class HubWeights:
    """A (backbone, weights) choice of the space that timm loads from the hub."""

    backbone: str
    weights: str  # as written in the study file
    name: str  # timm's ``arch.tag``

    def __str__(self) -> str:
        return f"{self.backbone} {self.weights} ({self.name})"


def hub_weights(choices: Iterable[tuple[str, str]]) -> list[HubWeights]:
    """The (backbone, weights) ``choices`` that come from the hub, each once."""
    found: dict[tuple[str, str], HubWeights] = {}
    for backbone, weights in choices:
        parsed = Weights.parse(weights)
        if parsed.from_hub and (backbone, weights) not in found:
            found[backbone, weights] = HubWeights(backbone, weights, check_hub_tag(backbone, parsed.tag))
    return list(found.values())


def in_cache(name: str) -> bool:
    """Whether timm would find the weights ``name`` (``arch.tag``) without the network: in the Hugging Face
    cache, or for weights timm has only as a URL, in torch's hub folder."""
    import torch
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return False
    if cfg.file:
        return Path(cfg.file).is_file()
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_FILES
        return any(isinstance(try_to_load_from_cache(repo, f, revision=revision or None), str) for f in files)
    if cfg.url:
        return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(cfg.url).path)).is_file()
    return False


def timeout_s() -> float:
    """Seconds the hub has to answer: ``TL_BENCH_HUB_TIMEOUT_S``, else ``DEFAULT_TIMEOUT_S``."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise WeightsError(f"{TIMEOUT_ENV}={text!r} is not a number", "seconds, e.g. 2", lead="; accepted: ") from None
    return value if value > 0 else DEFAULT_TIMEOUT_S


def unreachable() -> str | None:
    """Why the hub cannot be reached (``HF_HUB_OFFLINE``, or its endpoint gave no answer in ``timeout_s()``
    seconds), or None when it answered. Any HTTP answer counts: the hub is there."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return f"{OFFLINE_ENV} is set"
    endpoint, limit = constants.ENDPOINT, timeout_s()
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=limit).close()
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)
        except Exception as err:  # DNS, refused, TLS, proxy, time-out: all mean no weights from there
            reason = getattr(err, "reason", err)
            outcome.append(f"{endpoint}: {first_line(reason) if isinstance(reason, BaseException) else reason}")

    # A thread bounds the name lookup too, which urlopen's timeout does not.
    thread = threading.Thread(target=ask, daemon=True, name="tl-bench-hub-check")
    thread.start()
    thread.join(limit + 0.5)
    return outcome[0] if outcome else f"{endpoint}: no answer within {limit:g} s"


def go_offline() -> None:
    """Read hub weights from the local cache only, in this process and the workers it starts."""
    from huggingface_hub import constants

    os.environ[OFFLINE_ENV] = "1"
    constants.HF_HUB_OFFLINE = True


def check_hub(choices: Iterable[tuple[str, str]]) -> None:
    """WeightsError naming the hub weights among ``choices`` (backbone, weights) that are not in the local
    cache when the hub cannot be reached; with all of them cached, the hub is then used offline."""
    needed = hub_weights(choices)
    if not needed:
        return
    why = unreachable()
    if why is None:
        return
    missing = [w for w in needed if not in_cache(w.name)]
    if not missing:
        go_offline()
        return
    shown = ", ".join(map(str, missing))
    raise WeightsError(f"weights {shown} come from the Hugging Face hub, which cannot be reached ({why}), and are "
                       "not in the local cache", OFFLINE_CHOICES, lead="; offline, ")


__all__ = ["DEFAULT_TIMEOUT_S", "HubWeights", "OFFLINE_CHOICES", "TIMEOUT_ENV", "check_hub", "go_offline",
           "hub_weights", "in_cache", "timeout_s", "unreachable"]
