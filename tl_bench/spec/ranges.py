"""Search ranges of training hyperparameters: a list of choices, or ``{low, high, log, step}``.

A range is an integer range when both bounds (and the step, if any) are
integers, a float range otherwise; the study checks later that this matches
the TrialConfig field (a float field widens an integer range to floats).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from tl_bench.spec.explain import spec_issue, spec_issue_discriminator

# Optuna stores categorical choices as plain values only.
Choice = Union[None, StrictBool, StrictInt, StrictFloat, StrictStr]
RANGE_WORDS = "a list of choices, or a mapping {low, high, log, step}"


class CategoricalRange(BaseModel):
    """Pick one of ``choices`` (written in YAML as a plain list)."""

    model_config = ConfigDict(extra="forbid")
    accepted_text: ClassVar[str] = "a non-empty list of choices"
    flattened_fields: ClassVar[frozenset[str]] = frozenset({"choices"})  # YAML writes the list itself

    choices: list[Choice] = Field(
        min_length=1, description="a non-empty list of plain values (numbers, strings, true, false, null)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        return {"choices": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalRange:
        seen: list[Any] = []
        for choice in self.choices:
            if any(_same(choice, other) for other in seen):
                raise spec_issue(f"{choice!r} is listed twice", "each choice once")
            seen.append(choice)
        return self

    def contains(self, value: Any) -> bool:
        return any(_same(value, choice) for choice in self.choices)

    def words(self) -> str:
        return ", ".join(repr(c) for c in self.choices)


class _NumericRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _ordered(self) -> Any:
        low, high, log, step = self.low, self.high, self.log, self.step  # type: ignore[attr-defined]
        if not low < high:
            raise spec_issue(
                f"low ({low}) must be below high ({high})", "low < high; put a constant under fixed"
            )
        if log and low <= 0:
            raise spec_issue(f"log scale needs low > 0 (got {low})", "a positive low, or log: false")
        if log and step not in (None, 1):
            raise spec_issue("log and step cannot be combined", "either log: true or a step")
        return self

    def words(self) -> str:
        extra = ", log" if self.log else ""  # type: ignore[attr-defined]
        extra += f", step {self.step}" if self.step not in (None, 1) else ""  # type: ignore[attr-defined]
        return f"{self.low}..{self.high}{extra}"  # type: ignore[attr-defined]


class FloatRange(_NumericRange):
    """``suggest_float(low, high, log=log, step=step)``."""

    accepted_text: ClassVar[str] = "a mapping {low, high, log, step} with number bounds"

    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high


class IntRange(_NumericRange):
    """``suggest_int(low, high, log=log, step=step)``."""

    accepted_text: ClassVar[str] = "a mapping {low, high, log, step} with integer bounds"

    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _on_grid(self) -> IntRange:
        if (self.high - self.low) % self.step:
            raise spec_issue(
                f"high - low ({self.high - self.low}) is not a multiple of step {self.step}",
                "bounds a whole number of steps apart",
            )
        return self

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )


def _range_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {CategoricalRange: "categorical", IntRange: "int", FloatRange: "float"}.get(type(value))
    if isinstance(value, list) or (isinstance(value, dict) and "choices" in value):
        return "categorical"
    if isinstance(value, dict):
        numbers = [value.get("low"), value.get("high")]
        if value.get("step") is not None:
            numbers.append(value["step"])
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in numbers)
        return "int" if whole else "float"
    return None


HyperRange = Annotated[
    Union[
        Annotated[CategoricalRange, Tag("categorical")],
        Annotated[IntRange, Tag("int")],
        Annotated[FloatRange, Tag("float")],
    ],
    spec_issue_discriminator(_range_kind, "not a search range", RANGE_WORDS),
]


def _same(a: Any, b: Any) -> bool:
    # 1 == True == 1.0 in Python; as choices they are different values.
    return type(a) is type(b) and a == b


__all__ = ["CategoricalRange", "Choice", "FloatRange", "HyperRange", "IntRange", "RANGE_WORDS"]
