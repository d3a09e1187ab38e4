"""The search space: Optuna trial -> TrialConfig.

Conditional parts are named per backbone (``weights@test_vit``,
``freeze_depth@test_vit``) so each backbone only offers the weights and
freeze depths it really has: a depth beyond a backbone's stages is never
offered for it, and ``all`` is not offered twice under another number.
The grid sampler needs one fixed space, so there the valid
(backbone, weights, depth, neck, head, adaptation) combinations become one
categorical (an adaptation other than ``full`` as a sixth part, so grids
stored before adaptation existed read as they were).

An adaptation method applies to frozen stages: at depth 0 only ``full`` is
offered (a depth is not offered when the space leaves ``full`` out), and
``prompt`` only where the backbone has tokens and the neck reads its final
ones. The choice is the parameter ``adaptation`` when every listed method
applies, else one named for the methods it offers (``adaptation@bitfit+lora``):
Optuna keeps one distribution per name.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tl_bench.config import FreezeDepth, TrialConfig, parse_freeze_depth
from tl_bench.errors import SpecError
from tl_bench.spec import StudySpec
from tl_bench.study.storage import set_trial_attrs

COMBO = "combo"
_SEP = "|"


def valid_depths(depths: Sequence[FreezeDepth], n_stages: int) -> list[FreezeDepth]:
    """The spec's depths that exist for a backbone with ``n_stages`` stages, without duplicates."""
    out: list[FreezeDepth] = []
    for depth in depths:
        if depth == "all" or (isinstance(depth, int) and 0 <= depth <= n_stages):
            if depth not in out:
                out.append(depth)
    if "all" in out and n_stages in out:
        out.remove(n_stages)  # freezing every stage *is* "all": one trial, not two
    return out


def candidate_key(backbone: str, weights: str) -> str:
    """A (backbone, weights) candidate as screening and the grid name it: "<backbone>|<weights>"."""
    return f"{backbone}{_SEP}{weights}"


# Optuna stores a depth choice as text ("0", "2", "all"): one categorical type, readable in its tools,
# and the parameter type of every study stored so far.
def _depth_key(depth: FreezeDepth) -> str:
    return str(depth)


class SearchSpace:
    """Search space of one study spec, with each backbone's stage count resolved."""

    def __init__(self, spec: StudySpec, stage_counts: dict[str, int], *, candidates: list[str] | None = None) -> None:
        """``candidates`` ("<backbone>|<weights>", from screening) narrows the search to those pairs."""
        self.spec = spec
        self.grid = spec.sampler.name == "grid"
        self.weights = {b.name: [w for w in b.weights if candidates is None or candidate_key(b.name, w) in candidates]
                        for b in spec.space.backbones}
        self.backbones = [name for name, weights in self.weights.items() if weights]
        self.depths: dict[str, list[FreezeDepth]] = {}
        for name in self.backbones:
            depths = valid_depths(spec.space.freeze_depth, stage_counts[name])
            if not depths:
                raise SpecError(f"none of {list(spec.space.freeze_depth)} exists for backbone {name!r}",
                                f"0..{stage_counts[name]} or 'all'", source=str(spec.source_path),
                                field="space.freeze_depth")
            self.depths[name] = depths
        self.necks = list(spec.space.neck)
        self.heads = list(spec.space.head)
        self.hyper = dict(spec.space.hyper)
        self.adaptations = list(spec.space.adaptation)
        for name in self.backbones:
            offered = [d for d in self.depths[name] if any(self.methods(name, d, n) for n in self.necks)]
            if not offered:
                raise SpecError(f"no adaptation in {self.adaptations} applies to backbone {name!r} at any listed "
                                "freeze depth", "full, or a freeze depth above 0 with a method the backbone takes",
                                source=str(spec.source_path), field="space.adaptation")
            self.depths[name] = offered

    def methods(self, backbone: str, depth: FreezeDepth, neck: str) -> list[str]:
        """The listed adaptation methods that apply to (backbone, depth, neck)."""
        if depth == 0:
            return ["full"] if "full" in self.adaptations else []
        return [m for m in self.adaptations if m != "prompt" or _prompts_fit(backbone, neck)]

    # -- combinations -----------------------------------------------------
    def combos(self) -> list[str]:
        out = []
        for bb in self.backbones:
            for w, d, n, h in itertools.product(self.weights[bb], self.depths[bb], self.necks, self.heads):
                for method in self.methods(bb, d, n):
                    out.append(_SEP.join([bb, w, _depth_key(d), n, h] + ([method] if method != "full" else [])))
        return out

    def grid_space(self) -> dict[str, list[Any]]:
        space: dict[str, list[Any]] = {COMBO: self.combos()}
        for name, rng in self.hyper.items():
            space[name] = list(rng.choices)
        return space

    # -- sampling ---------------------------------------------------------
    def suggest(self, trial: optuna.Trial, attrs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Draw the searched values of one trial as TrialConfig field values.

        Parts with one choice are no Optuna parameter; they are stored as user attributes, written
        here, or added to ``attrs`` for the caller to write with its own (one write instead of two).
        """
        if self.grid:
            bb, w, d, neck, head, *method = trial.suggest_categorical(COMBO, self.combos()).split(_SEP)
            values: dict[str, Any] = {"backbone": bb, "weights": w, "freeze_depth": parse_freeze_depth(d), "neck": neck,
                                      "head": head, "adaptation": method[0] if method else "full"}
        else:
            bb = trial.suggest_categorical("backbone", self.backbones)
            single: dict[str, str] = {}  # parts with one choice: user attributes
            values = {
                "backbone": bb,
                "weights": self._choose(trial, f"weights@{bb}", self.weights[bb], single),
                "freeze_depth": parse_freeze_depth(
                    self._choose(trial, f"freeze_depth@{bb}", [_depth_key(d) for d in self.depths[bb]], single)
                ),
                "neck": self._choose(trial, "neck", self.necks, single),
                "head": self._choose(trial, "head", self.heads, single),
            }
            methods = self.methods(bb, values["freeze_depth"], values["neck"])
            values["adaptation"] = "full" if methods == ["full"] else self._choose(
                trial, adaptation_param(methods, self.adaptations), methods, single)
            if attrs is not None:
                attrs.update(single)
            elif single:
                set_trial_attrs(trial, single)
        for name, rng in self.hyper.items():
            values[name] = _suggest_range(trial, name, rng)
        return values

    @staticmethod
    def _choose(trial: optuna.Trial, name: str, choices: list[str], single: dict[str, str]) -> str:
        if len(choices) == 1:
            single[name] = choices[0]
            return choices[0]
        return str(trial.suggest_categorical(name, choices))

    def choices(self, name: str) -> list[Any] | Any | None:
        """What this space offers for Optuna parameter ``name``: a list of choices, a range, or None."""
        if self.grid:
            return None  # one fixed grid: nothing else can be enqueued into it
        if name == "backbone":
            return self.backbones
        part, _, backbone = name.partition("@")
        per_backbone = {"weights": self.weights, "freeze_depth": {b: [_depth_key(d) for d in ds]
                                                                  for b, ds in self.depths.items()}}
        if part in per_backbone and backbone in self.backbones:
            offered = per_backbone[part][backbone]
            return offered if len(offered) > 1 else None  # a single choice is no parameter
        if name in ("neck", "head"):
            offered = self.necks if name == "neck" else self.heads
            return offered if len(offered) > 1 else None
        if part == "adaptation":
            offered = backbone.split("+") if backbone else self.adaptations
            return offered if len(offered) > 1 and set(offered) <= set(self.adaptations) else None
        return self.hyper.get(name)

    def accepts(self, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The parameters of another study that this space offers as they are, and a note for each
        one left out (another backbone, a value outside the range, a parameter not searched here)."""
        kept, dropped = {}, []
        for name, value in params.items():
            offered = self.choices(name)
            if isinstance(offered, list):
                ok = value in offered
            elif offered is not None and getattr(offered, "choices", None) is not None:
                ok = value in offered.choices
            elif offered is not None:
                ok = isinstance(value, (int, float)) and offered.low <= value <= offered.high
            else:
                ok = False
            if ok:
                kept[name] = value
            else:
                dropped.append(f"{name}={value!r}")
        return kept, dropped

    def offers(self, baseline: dict[str, Any]) -> bool:
        """Whether a (partial) baseline's backbone and weights are in this space."""
        bb = baseline.get("backbone", self.backbones[0])
        return bb in self.backbones and baseline.get("weights", self.weights[bb][0]) in self.weights[bb]

    def baseline_params(self, baseline: dict[str, Any]) -> dict[str, Any]:
        """Optuna params that make the sampler reproduce a (partial) baseline trial."""
        bb = baseline.get("backbone", self.backbones[0])
        params: dict[str, Any] = {}
        parts = {
            "weights": baseline.get("weights", self.weights[bb][0]),
            "freeze_depth": _depth_key(baseline.get("freeze_depth", self.depths[bb][0])),
            "neck": baseline.get("neck", self.necks[0]),
            "head": baseline.get("head", self.heads[0]),
        }
        methods = self.methods(bb, parse_freeze_depth(parts["freeze_depth"]), parts["neck"]) or ["full"]
        method = baseline.get("adaptation", methods[0])
        if self.grid:
            params[COMBO] = _SEP.join([bb, parts["weights"], parts["freeze_depth"], parts["neck"], parts["head"]]
                                      + ([method] if method != "full" else []))
        else:
            params["backbone"] = bb
            if len(self.weights[bb]) > 1:
                params[f"weights@{bb}"] = parts["weights"]
            if len(self.depths[bb]) > 1:
                params[f"freeze_depth@{bb}"] = parts["freeze_depth"]
            for key in ("neck", "head"):
                if len(getattr(self, key + "s")) > 1:
                    params[key] = parts[key]
            if len(methods) > 1:
                params[adaptation_param(methods, self.adaptations)] = method
        for name in self.hyper:
            if name in baseline:
                params[name] = baseline[name]
        return params


def adaptation_param(methods: list[str], listed: list[str]) -> str:
    """Optuna's name for an adaptation choice among ``methods`` of the ``listed`` ones."""
    return "adaptation" if methods == listed else "adaptation@" + "+".join(methods)


def _prompts_fit(backbone: str, neck: str) -> bool:
    from tl_bench.models import NECKS, backbone_takes_prompts

    return backbone_takes_prompts(backbone) and NECKS[neck].scales <= 1 and not NECKS[neck].keeps_head


def candidate_of(trial: FrozenTrial) -> str | None:
    """The "<backbone>|<weights>" a trial ran, read back from what ``SearchSpace.suggest`` stored."""
    if COMBO in trial.params:
        return _SEP.join(str(trial.params[COMBO]).split(_SEP)[:2])
    backbone = trial.params.get("backbone")
    if backbone is None:
        return None
    weights = trial.params.get(f"weights@{backbone}", trial.user_attrs.get(f"weights@{backbone}"))
    return None if weights is None else candidate_key(backbone, weights)


def _suggest_range(trial: optuna.Trial, name: str, rng: Any) -> Any:
    choices = getattr(rng, "choices", None)
    if choices is not None:
        return trial.suggest_categorical(name, list(choices))
    if isinstance(rng.low, int) and isinstance(rng.high, int) and not isinstance(rng.low, bool):
        step = int(rng.step) if getattr(rng, "step", None) else 1
        return trial.suggest_int(name, rng.low, rng.high, step=step, log=bool(rng.log))
    kwargs: dict[str, Any] = {"log": bool(rng.log)}
    if getattr(rng, "step", None):
        kwargs["step"] = float(rng.step)
    return trial.suggest_float(name, float(rng.low), float(rng.high), **kwargs)


def build_config(
    values: dict[str, Any],
    *,
    base: dict[str, Any],
    checkpoint_for: Callable[[str, str], str | None],
) -> TrialConfig:
    """Merge the dataset's fields and fixed values (``base``) with the sampled values;
    ``checkpoint_for(backbone, weights)`` names the checkpoint file a weights label stands for."""
    fields = {**base, **values}
    fields["weights_path"] = checkpoint_for(fields["backbone"], fields["weights"])
    return TrialConfig.from_dict(fields)


__all__ = ["COMBO", "SearchSpace", "adaptation_param", "build_config", "candidate_key", "candidate_of", "valid_depths"]
