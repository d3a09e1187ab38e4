"""Turn a pydantic validation error into one line: field path, what is wrong, what is accepted.

pydantic reports *where* (``loc``) and *what*; the accepted values are read
back from the schema itself by walking the models along ``loc``, so the
message stays true when a field changes.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any, get_args, get_origin

from pydantic import BaseModel, Discriminator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from tl_bench.errors import did_you_mean
from tl_bench.spec.schema_words import choices_of, describe, field_of, is_union, keys_of, unwrap

# The error type of the schema's own checks: both halves of the message ride in its context.
_ISSUE = "spec"
_ISSUE_MESSAGE = "{what}; accepted: {accepted}"


def explain_validation_error(err: ValidationError, root: type[BaseModel]) -> tuple[str, str, str]:
    """(field path, what is wrong, what is accepted) for the first error pydantic found."""
    errors = err.errors(include_url=False)
    first = _misspelled_required(errors) or errors[0]
    loc, kind, ctx = first["loc"], first["type"], first.get("ctx") or {}
    path, target, meta, parent, words = _walk(root, loc)
    text = format_path(path)
    accepted = words or describe(target, meta)
    if kind == _ISSUE:  # raised by the schema's own validators: they say both halves
        return text, str(ctx["what"]), str(ctx["accepted"])
    if kind == "extra_forbidden":
        keys = keys_of(parent) if parent is not None else []
        return text, f"unknown field {loc[-1]!r}{did_you_mean(loc[-1], keys)}", ", ".join(keys) or "none"
    if kind == "missing":
        return text, "required field is missing", accepted
    if kind == "union_tag_invalid":  # the discriminator field itself (``name``) is what is wrong
        field = str(ctx.get("discriminator", "")).strip("'")
        hint = did_you_mean(ctx.get("tag"), choices_of(target))
        return f"{text}.{field}", f"unknown value {ctx.get('tag')!r}{hint}", str(ctx.get("expected_tags"))
    if kind == "union_tag_not_found":
        return text, f"{ctx.get('discriminator')} is missing", accepted
    if kind == "literal_error":
        hint = did_you_mean(first["input"], choices_of(target)) if isinstance(first["input"], str) else ""
        return text, f"{_show(first['input'])} is not accepted{hint}", str(ctx.get("expected"))
    if kind == "too_short" and not first["input"]:
        return text, "the list is empty", accepted
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return text, f"expected a mapping (got {_show(first['input'])})", accepted
    if kind == "string_pattern_mismatch":
        return text, f"invalid name {_show(first['input'])}", accepted
    if kind == "string_too_long":  # the input itself is too long to show
        limit = ctx.get("max_length")
        return text, f"{len(first['input'])} characters, more than {limit}", f"{accepted}, at most {limit} characters"
    what = f"{first['msg'][0].lower()}{first['msg'][1:]} (got {_show(first['input'])})"
    return text, what, accepted


def _misspelled_required(errors: list[Any]) -> Any:
    """An unknown key that is a near miss of a required field missing beside it (``budgett`` for
    ``budget``): the typo is the error to report, not the missing field."""
    missing = [e["loc"] for e in errors if e["type"] == "missing" and e["loc"]]
    for error in errors:
        parent, key = error["loc"][:-1], error["loc"][-1] if error["loc"] else None
        if error["type"] == "extra_forbidden" and did_you_mean(key, [m[-1] for m in missing if m[:-1] == parent]):
            return error
    return None


def format_path(path: list[str | int]) -> str:
    """``['space', 'backbones', 1, 'weights']`` -> ``space.backbones[1].weights``."""
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out or "top level"


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], Any, list[Any], Any, str]:
    """Follow ``loc`` through the schema: printed path, target type, its metadata, the model
    holding it, and the field's own description of what it accepts (if any)."""
    tp: Any = root
    meta: list[Any] = []
    parent: Any = None
    words = ""
    path: list[Any] = []
    items = list(loc)
    for index, item in enumerate(items):
        if item == "[key]":
            continue  # consumed with the dict key before it
        tp, meta = unwrap(tp, meta)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            parent = tp
            field: FieldInfo | None = field_of(tp, item) if isinstance(item, str) else None
            if field is None:  # a key the model does not have
                path.append(item)
                tp, meta, words = Any, [], ""
                continue
            if item not in getattr(tp, "flattened_fields", ()):
                path.append(item)
            tp, meta, words = field.annotation, list(field.metadata), field.description or ""
            continue
        origin = get_origin(tp)
        if origin in (list, tuple, set):
            path.append(item)
            tp, meta, words = get_args(tp)[0], [], ""
        elif origin is dict:
            path.append(item)
            key_type, value_type = get_args(tp)
            is_key = index + 1 < len(items) and items[index + 1] == "[key]"
            tp, meta, words = (key_type if is_key else value_type), [], ""
        elif is_union(tp):
            member = _tagged_member(tp, item)
            if member is not None:
                tp, meta, words = member, [], ""
            # otherwise pydantic is naming the union member it tried: the union stays the target
        else:
            path.append(item)
            tp, meta, words = Any, [], ""
    return path, tp, meta, parent, words


def _tagged_member(union: Any, tag: Any) -> Any:
    for member in get_args(union):
        inner, inner_meta = unwrap(member, [])
        if any(getattr(m, "tag", None) == tag for m in inner_meta):
            return inner
        if isinstance(inner, type) and issubclass(inner, BaseModel) and "name" in inner.model_fields:
            if tag in get_args(inner.model_fields["name"].annotation):
                return inner
    return None


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxset = 2, 4, 4, 4, 4
_SHORT.maxstring = _SHORT.maxother = 50


def _show(value: Any) -> str:
    # reprlib stops early: a huge value (shared lists nested many times over) is never rendered whole.
    text = _SHORT.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def spec_issue(what: str, accepted: str) -> PydanticCustomError:
    """The error a schema validator raises: it carries both halves of the message."""
    return PydanticCustomError(_ISSUE, _ISSUE_MESSAGE, {"what": what, "accepted": accepted})


def spec_issue_discriminator(tag_of: Callable[[Any], str | None], what: str, accepted: str) -> Discriminator:
    """A union discriminator whose failure (no tag for the value) is a spec issue with these halves."""
    return Discriminator(
        tag_of,
        custom_error_type=_ISSUE,
        custom_error_message=_ISSUE_MESSAGE,
        custom_error_context={"what": what, "accepted": accepted},
    )


__all__ = [
    "explain_validation_error",
    "format_path",
    "spec_issue",
    "spec_issue_discriminator",
]
