"""Cache at the freeze boundary: the frozen stages run once per split, each epoch only the rest.

With stages 0..k-1 frozen (0 < k < n_stages), unaugmented and unmixed inputs, the frozen part is
a fixed function of the image (frozen stages stay in eval mode, their BatchNorm statistics as the
optional re-estimation pass left them), so its output, the input of stage k, is computed once per
split and stored memory-mapped (``BoundaryStore``); training and evaluation resume the backbone
from it. timm's stage groups partition parameters, not the forward pass, so the cut is taken only
where it is proven (``plan_cut``): the family's ``forward_features`` is written out as a chain of
calls (``models.stages.forward_steps``), every parameter belongs to one call, the calls before the
cut read only frozen stages and those after it only trained ones, the chain reproduces
``forward_features`` on a probe input, and the frozen calls give the same output in training and
evaluation mode (no dropout or batch statistics). Anything else trains uncached, its reason
logged once.

As with the feature cache, filling an entry is measured (``FillCost``) and recorded with it, and
every trial using the entry is charged that record.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from tl_bench.config import TrialConfig
from tl_bench.models import TransferModel
from tl_bench.models.stages import ForwardStep, forward_steps
from tl_bench.train.batches import ImageFeeder, batch_order
from tl_bench.train.cache import FillCost
from tl_bench.train.boundary_store import BoundaryStore
from tl_bench.train.cost import PeakMemory, PhaseTimer
from tl_bench.train.features import EXTRACT_BATCH, StoredSplits, cache_key_parts

log = logging.getLogger(__name__)
_logged: set[str] = set()
_PROBE_ITEMS = 2


@dataclass(frozen=True)
class BoundaryCut:
    """A proven cut of ``forward_features`` before stage ``depth``: the frozen calls, then the rest
    (by module name, so that any copy of the model, its EMA included, runs its own)."""

    depth: int
    frozen: tuple[ForwardStep, ...]
    rest: tuple[str, ...]
    item_shape: tuple[int, ...]  # of one item's boundary activation
    dtype: torch.dtype  # the training precision's
    frozen_flops: float  # forward FLOPs per image of the frozen calls

    def run_frozen(self, x: Tensor) -> Tensor:
        for step in self.frozen:
            x = step.run(x)
        return x

    def run_rest(self, model: TransferModel, h: Tensor) -> list[Tensor]:
        """The backbone's output (as ``Backbone.forward`` gives it) from the boundary activation."""
        timm_model = model.backbone.model
        for name in self.rest:
            h = timm_model.get_submodule(name)(h)
        if model.backbone.nhwc and h.ndim == 4:
            h = h.permute(0, 3, 1, 2)
        return [h]

    def item_bytes(self) -> int:
        return int(torch.Size(self.item_shape).numel()) * torch.empty((), dtype=self.dtype).element_size()


def boundary_applies(config: TrialConfig, model: TransferModel) -> bool:
    """Whether a boundary cache is worth asking for: some but not all stages frozen, no random
    augmentation or mixing of the images, the cache on."""
    depth = model.backbone.freeze_depth
    return bool(config.use_cache and 0 < depth < model.backbone.n_stages and not model.backbone.fully_frozen
                and config.augment == "none" and not config.mixes)


def plan_cut(model: TransferModel, autocast: Callable[[], AbstractContextManager[Any]]) -> BoundaryCut | str:
    """The proven cut at the backbone's freeze depth, or why there is none (see the module docstring)."""
    backbone = model.backbone
    depth = backbone.freeze_depth
    if backbone.adaptation != "full":
        return f"adaptation {backbone.adaptation!r} trains inside the frozen stages"
    if backbone.feature_indices:
        return "the neck reads several scales (forward_intermediates), which a cut does not give"
    steps = forward_steps(backbone.model)
    if steps is None:
        return f"{type(backbone.model).__name__}'s forward is not a chain of calls known to tl-bench"
    stage_of = {name: i for i, names in enumerate(backbone.stage_params) for name in names}
    owner = {}
    for name in stage_of:
        owners = [i for i, step in enumerate(steps) if step.owns(name)]
        if len(owners) != 1:
            return f"parameter {name} is read by {len(owners)} calls of the written-out forward, not one"
        owner[name] = owners[0]
    cut = min((owner[n] for n, stage in stage_of.items() if stage >= depth), default=len(steps))
    if any(stage_of[n] >= depth for n, i in owner.items() if i < cut) or any(
            stage_of[n] < depth for n, i in owner.items() if i >= cut):
        return f"stage {depth} does not start at a call of the forward"
    frozen, rest = steps[:cut], steps[cut:]
    if not all(isinstance(step.run, torch.nn.Module) for step in rest):
        return "a trained call is not a module"
    params = dict(backbone.model.named_parameters())
    if any(params[n].requires_grad for n, i in owner.items() if i < cut):
        return "a parameter before the cut trains"
    return _proven(model, BoundaryCut(depth, tuple(frozen), tuple(s.module for s in rest), (), torch.float32, 0.0),
                   autocast)


def _proven(
    model: TransferModel, cut: BoundaryCut, autocast: Callable[[], AbstractContextManager[Any]]
) -> BoundaryCut | str:
    """``cut`` with its shape, dtype and FLOPs, once the chain reproduced ``forward_features`` on a
    probe and the frozen calls answered alike in training and evaluation mode; else why not."""
    param = next(model.parameters())
    size = model.backbone.img_size
    probe = torch.randn(_PROBE_ITEMS, 3, size, size, generator=torch.Generator().manual_seed(0)).to(param.device)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            whole = model.backbone(probe)[-1]
            boundary = cut.run_frozen(probe)
            resumed = cut.run_rest(model, boundary)[-1]
            model.train()  # the frozen stages stay in eval mode; anything else between them would not
            in_training = [cut.run_frozen(probe) for _ in range(2)]
            model.eval()
            with autocast():
                dtype = cut.run_frozen(probe[:1]).dtype
            with FlopCounterMode(display=False) as counter:
                cut.run_frozen(probe[:1])
    finally:
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
        model.train(was_training)
    if whole.shape != resumed.shape or not torch.allclose(whole, resumed, rtol=1e-5, atol=1e-6):
        return "the written-out forward does not reproduce forward_features"
    if not all(torch.equal(t, boundary) for t in in_training):
        return "the frozen stages answer differently in training mode (dropout or batch statistics)"
    return BoundaryCut(cut.depth, cut.frozen, cut.rest, tuple(boundary.shape[1:]), dtype,
                       float(counter.get_total_flops()))


def log_fallback(config: TrialConfig, reason: str) -> None:
    """Say once per backbone, depth and reason why a trial trains without the boundary cache."""
    line = f"{config.backbone} with freeze depth {config.freeze_depth}: no boundary cache: {reason}"
    if line not in _logged:
        _logged.add(line)
        log.warning(line)


class BoundaryFeeder(StoredSplits):
    """Training and evaluation batches of boundary activations; the model resumes from them."""

    def __init__(
        self,
        model: TransferModel,
        images: ImageFeeder,
        config: TrialConfig,
        cut: BoundaryCut,
        *,
        fingerprint: str,
        store: BoundaryStore,
        autocast: Callable[[], AbstractContextManager[Any]],
        precision: str,
    ) -> None:
        self.model, self.images, self.cut, self.store = model, images, cut, store
        self.autocast, self.device = autocast, images.device
        self.batch_size, self.eval_batch_size = images.batch_size, images.eval_batch_size
        self.max_mb = config.boundary_cache_mb
        self._key_parts = {**cache_key_parts(config, model, images, fingerprint=fingerprint, precision=precision),
                           "boundary": cut.depth}
        self._stored: dict[str, Tensor] = {}
        self.computed: set[str] = set()  # splits whose boundary this trial computed
        self.costs: dict[str, FillCost] = {}  # per split: what filling its entry cost, as recorded

    def needed_mb(self) -> float:
        """Disk the three splits' activations take."""
        items = sum(len(self.images.splits[s]) for s in ("train", "val", "test"))
        return items * self.cut.item_bytes() / 2**20

    def fetch(self, split: str) -> Tensor:
        """The split's boundary activation (memory-mapped), found or computed and stored now."""
        if split not in self._stored:
            entry = self.store.get(self.key(split))
            if entry is None:
                keep = [self.key(s) for s in ("train", "val", "test")]
                entry = self._fill(split, keep)
                self.computed.add(split)
            self._stored[split], self.costs[split] = entry
        return self._stored[split]

    def _fill(self, split: str, keep: list[str]) -> tuple[Tensor, FillCost]:
        memory, timer = PeakMemory(self.device, self.autocast), PhaseTimer(self.device)
        memory.start()
        n_items = len(self.images.splits[split])

        @torch.no_grad()
        def batches() -> Iterator[Tensor]:
            with timer("fill"):
                for x, _ in self.images.eval_batches(split, EXTRACT_BATCH):
                    with self.autocast():
                        yield self.cut.run_frozen(x)

        def measure() -> FillCost:
            return FillCost(seconds=timer.get("fill"), flops=self.cut.frozen_flops * n_items,
                            peak_mb=memory.growth_mb())

        self.model.eval()
        describe = {**self._key_parts, "split": split}
        return self.store.put(self.key(split), batches(), measure, max_mb=self.max_mb, keep=keep, describe=describe)

    def _placed(self, h: Tensor) -> Tensor:
        h = h.to(self.device, non_blocking=True)
        if self.images.channels_last and h.ndim == 4:
            h = h.contiguous(memory_format=torch.channels_last)
        return h

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        stored, labels = self.fetch("train"), self.images.labels("train")
        for idx in batch_order(len(labels), self.batch_size, generator):
            yield self._placed(stored[idx]), labels[idx.to(labels.device)]

    def eval_batches(self, split: str) -> Iterator[tuple[Tensor, Tensor]]:
        stored, labels = self.fetch(split), self.images.labels(split)
        for start in range(0, len(labels), self.eval_batch_size):
            stop = start + self.eval_batch_size
            yield self._placed(stored[start:stop]), labels[start:stop]

    def forward(self, model: TransferModel, h: Tensor) -> Tensor:
        return model.forward_from_features(self.cut.run_rest(model, h))

    def step_flops(self, flops: dict[str, float]) -> float:
        """FLOPs per trained image of a step from the boundary: the whole step less the frozen calls."""
        return flops["flops_train_per_image"] - self.cut.frozen_flops

    def features_mb(self) -> float:
        """Process memory the activations hold: none, they are mapped from disk."""
        return 0.0


__all__ = ["BoundaryCut", "BoundaryFeeder", "boundary_applies", "log_fallback", "plan_cut"]
