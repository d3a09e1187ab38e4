"""Plain words for what a study file's schema accepts, read from the pydantic models themselves:
the accepted-values half of every validation message, and the choices a near miss is matched to.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
NAME_WORDS = "a name of letters, digits, '_', '.' and '-'"


def describe(tp: Any, meta: list[Any] | tuple[Any, ...] = ()) -> str:
    """Plain words for the values an annotation accepts."""
    tp, meta = unwrap(tp, list(meta))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return getattr(tp, "accepted_text", "") or "a mapping with keys " + ", ".join(keys_of(tp))
    if tp is Any:
        return "any value"
    if tp is None or tp is type(None):
        return "null"
    if is_union(tp):
        members = get_args(tp)
        words = " or ".join(describe(m) for m in members if m is not type(None))
        return words + (" or null" if type(None) in members else "")
    origin = get_origin(tp)
    if origin is Literal:
        return ", ".join(repr(v) for v in get_args(tp))
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer" + _bounds(meta)
    if tp is float:
        return "a number" + _bounds(meta)
    if tp is str:
        patterns = [getattr(m, "pattern", None) for m in meta]
        return NAME_WORDS if NAME_PATTERN in patterns else "a string"
    if origin in (list, tuple, set):
        args = get_args(tp)
        item = describe(args[0]) if args else "any value"
        some = any(isinstance(m, annotated_types.MinLen) and m.min_length > 0 for m in meta)
        return ("a non-empty list" if some else "a list") + f", each {item}"
    if origin is dict or tp is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def choices_of(tp: Any) -> list[Any]:
    """The values a literal, or the tags a tagged union of sections, accepts (for "did you mean")."""
    tp, meta = unwrap(tp, [])
    if get_origin(tp) is Literal:
        return list(get_args(tp))
    if not is_union(tp):
        return []
    out: list[Any] = []
    for member in get_args(tp):
        inner, inner_meta = unwrap(member, [])
        out += [m.tag for m in inner_meta if getattr(m, "tag", None) is not None]
        if isinstance(inner, type) and issubclass(inner, BaseModel) and "name" in inner.model_fields:
            out += choices_of(inner.model_fields["name"].annotation)
        elif get_origin(inner) is Literal:
            out += get_args(inner)
    return out


def unwrap(tp: Any, meta: list[Any]) -> tuple[Any, list[Any]]:
    while get_origin(tp) is Annotated or _optional_of(tp) is not None:
        if get_origin(tp) is Annotated:
            base, *extra = get_args(tp)
            tp, meta = base, [*meta, *extra]
        else:  # ``Section | None``: an optional section is checked as the section
            tp = _optional_of(tp)
    # ``Annotated[int, Field(ge=0)]`` keeps its constraints inside the FieldInfo
    expanded = [m for item in meta for m in ([item, *item.metadata] if isinstance(item, FieldInfo) else [item])]
    return tp, expanded


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a section takes, as written in a study file (a field's alias where it has one)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def field_of(model: type[BaseModel], key: str) -> FieldInfo | None:
    """The field a study file's key names (by its alias where it has one)."""
    return next((f for name, f in model.model_fields.items() if (f.alias or name) == key), None)


def _optional_of(tp: Any) -> Any:
    """The model of an optional model field (``Model | None``), else None."""
    if not is_union(tp):
        return None
    members = [m for m in get_args(tp) if m is not type(None)]
    single = len(members) == 1 and len(get_args(tp)) == 2
    return members[0] if single and isinstance(members[0], type) and issubclass(members[0], BaseModel) else None


def is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


def _bounds(meta: list[Any]) -> str:
    words = []
    for m in meta:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                words.append(f"{sign} {getattr(m, attr)}")
    return (" " + " and ".join(words)) if words else ""


__all__ = ["NAME_PATTERN", "NAME_WORDS", "choices_of", "describe", "field_of", "keys_of", "is_union", "unwrap"]
