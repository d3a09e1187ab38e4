"""Model soups (Wortsman et al. 2022): one network whose weights average fine-tuned ingredients.

Ingredients are state dicts of one architecture (the best seeds or settings of a study that
differ only in hyperparameters, fine-tuned from the same start). ``greedy_soup`` adds them best
first and keeps one only when the soup's validation score does not drop (the paper's rule: ties
keep the ingredient, as a flatter average tends to transfer better), so the soup is never worse
on validation than its best ingredient. It scores through a callback, so it knows nothing of the
model: the caller loads the state dict into its network and returns validation accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tl_bench.errors import TLBenchError

StateDict = Mapping[str, Tensor]
Score = Callable[[dict[str, Tensor]], float]  # a state dict -> its validation score, higher is better


class SoupError(TLBenchError):
    """Ingredients that cannot be averaged: no ingredient, or keys and shapes that differ."""


@dataclass(frozen=True)
class Soup:
    """The averaged state dict, the candidates it holds (indices into the list given), its
    validation score and every candidate's own score (same order as given)."""

    state_dict: dict[str, Tensor]
    ingredients: tuple[int, ...]
    score: float
    candidate_scores: tuple[float, ...]


def check_ingredients(state_dicts: Sequence[StateDict]) -> None:
    """Raise ``SoupError`` naming the first key that is missing, extra or of another shape or kind
    (floating point or not) in some ingredient, compared with the first."""
    if not state_dicts:
        raise SoupError("a soup needs at least one ingredient")
    first = state_dicts[0]
    for i, other in enumerate(state_dicts[1:], start=1):
        missing, extra = sorted(first.keys() - other.keys()), sorted(other.keys() - first.keys())
        if missing or extra:
            key, where = (missing[0], "lacks") if missing else (extra[0], "has the extra")
            raise SoupError(f"ingredient {i} {where} key {key!r} (ingredient 0 has {len(first)} keys, it has "
                            f"{len(other)})", "state dicts of one architecture")
        for key, tensor in first.items():
            if other[key].shape != tensor.shape or other[key].is_floating_point() != tensor.is_floating_point():
                raise SoupError(f"key {key!r} is {_kind(tensor)} in ingredient 0 but {_kind(other[key])} in "
                                f"ingredient {i}", "state dicts of one architecture")


def average_state_dicts(state_dicts: Sequence[StateDict]) -> dict[str, Tensor]:
    """The uniform soup: floating-point tensors averaged (accumulated in at least float32, returned
    in their own dtype), other tensors (BatchNorm's ``num_batches_tracked``) taken from the first."""
    check_ingredients(state_dicts)
    total = _Sum(state_dicts[0])
    for other in state_dicts[1:]:
        total.add(other)
    return total.mean()


def greedy_soup(candidates: Sequence[StateDict], score: Score, *, uniform: bool = False) -> Soup:
    """The greedy soup of ``candidates`` (or, with ``uniform``, the average of them all).

    Every candidate is scored with ``score`` first and the candidates are tried best first (ties
    in the given order), so the soup starts from the best one whatever order they come in. Then
    ``score`` runs once per further candidate tried (greedy) or once on the average (uniform).
    """
    check_ingredients(candidates)
    scores = tuple(float(score(dict(sd))) for sd in candidates)
    if uniform:
        soup = average_state_dicts(candidates)
        return Soup(soup, tuple(range(len(candidates))), float(score(soup)), scores)
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    total = _Sum(candidates[order[0]])
    kept, best = [order[0]], scores[order[0]]
    for i in order[1:]:
        trial = total.mean_with(candidates[i])
        value = float(score(trial))
        if value >= best:
            total.add(candidates[i])
            kept.append(i)
            best = value
    return Soup(total.mean(), tuple(kept), best, scores)


class _Sum:
    """A running sum of ingredients: float tensors summed, the rest kept from the first."""

    def __init__(self, first: StateDict) -> None:
        self.count = 1
        self.values = {k: _accumulator(t) for k, t in first.items()}
        self.dtypes = {k: t.dtype for k, t in first.items()}

    def add(self, other: StateDict) -> None:
        for key, value in self.values.items():
            if value.is_floating_point():
                value += other[key].to(value)
        self.count += 1

    def mean(self) -> dict[str, Tensor]:
        return {k: (v / self.count if v.is_floating_point() else v.clone()).to(self.dtypes[k])
                for k, v in self.values.items()}

    def mean_with(self, other: StateDict) -> dict[str, Tensor]:
        """The mean as if ``other`` were added, leaving the sum as it is."""
        return {k: ((v + other[k].to(v)) / (self.count + 1) if v.is_floating_point() else v.clone()).to(self.dtypes[k])
                for k, v in self.values.items()}


def _accumulator(tensor: Tensor) -> Tensor:
    if not tensor.is_floating_point():
        return tensor.detach().clone()
    return tensor.detach().to(torch.promote_types(tensor.dtype, torch.float32), copy=True)


def _kind(tensor: Tensor) -> str:
    return f"{'float' if tensor.is_floating_point() else 'integer'} {tuple(tensor.shape)}"


__all__ = ["Score", "Soup", "SoupError", "StateDict", "average_state_dicts", "check_ingredients", "greedy_soup"]
