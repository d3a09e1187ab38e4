"""``keep_models:``: which trials of a dataset study keep the weights they were tested with."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tl_bench.spec.explain import spec_issue

KEEP_WORDS = "'best', 'none' or a mapping {top_k: N}"


class KeepModelsSpec(BaseModel):
    """The best seeds of the ``top_k`` first settings (the leaderboard's rule) keep an MLflow model; the rest keep none.

    ``best`` is ``{top_k: 1}`` and ``none`` is ``{top_k: 0}``. Pruned and failed
    trials never keep one, and a model displaced from the top is deleted, so the
    disk a study takes stays bounded whatever its number of trials.
    """

    model_config = ConfigDict(extra="forbid")
    accepted_text: ClassVar[str] = KEEP_WORDS

    top_k: int = Field(default=1, ge=0, description=KEEP_WORDS)

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        if isinstance(value, str):
            words = {"best": 1, "none": 0}
            if value.strip() not in words:
                raise spec_issue(f"unknown value {value!r}", KEEP_WORDS)
            return {"top_k": words[value.strip()]}
        return value

    @property
    def label(self) -> str:
        """How a study file would write it: ``best``, ``none`` or ``top_k: N``."""
        return {0: "none", 1: "best"}.get(self.top_k, f"top_k: {self.top_k}")


__all__ = ["KEEP_WORDS", "KeepModelsSpec"]
