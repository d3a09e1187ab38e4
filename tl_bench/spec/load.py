"""Reading a study file: YAML -> schema -> checks against the registries -> StudySpec.

Every problem becomes one SpecError line:
``<file>: <field.path>: <what is wrong>; accepted: <what is accepted>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tl_bench.errors import SpecError, first_line
from tl_bench.spec.check_refs import (
    check_backbones,
    check_datasets,
    check_freeze_depths,
    check_parts,
    stage_counts,
)
from tl_bench.spec.check_values import check_baselines, check_fixed, check_hyper, check_tuning
from tl_bench.spec.explain import explain_validation_error
from tl_bench.spec.memory_bound import check_img_sizes
from tl_bench.spec.study import StudySpec

_TOP_WORDS = "a mapping with keys " + ", ".join(StudySpec.model_fields)
# A study file is a few kilobytes; these bounds refuse hostile or broken ones before they cost memory.
MAX_BYTES = 1_000_000
MAX_DEPTH = 32  # mappings and lists inside one another
MAX_VALUES = 100_000  # values (scalars, mappings, lists) once every alias is expanded
_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (the later one would win silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; relative paths in it resolve against its folder (the real one,
    when ``path`` is a symbolic link)."""
    path = Path(path)
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            "file not found", "the path of a study .yaml file", source=display, field="top level"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot be read ({err})", "a UTF-8 text file", source=display, field="top level") from None
    try:
        _check_bounds(text, display)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise SpecError(_yaml_what(err), "valid YAML", source=display, field=_yaml_where(err)) from None
    return _parse(data, path, display)


def _check_bounds(text: str, display: str) -> None:
    """SpecError for a file too large, too deeply nested, or whose aliases expand too far.

    Walks PyYAML's event stream (no objects are built, nothing recurses), counting each
    alias as the size of what it names: a few hundred bytes of nested aliases (a "billion
    laughs") are refused at once instead of being expanded by validation and messages.
    """
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise SpecError(f"the file is {size:,} bytes", f"a study file of at most {MAX_BYTES:,} bytes",
                        source=display, field="top level")
    open_values: list[list[Any]] = [[0, None]]  # per open mapping or list: values so far, its anchor
    sizes: dict[str, int] = {}
    for event in yaml.parse(text, Loader=_UniqueKeyLoader):
        if isinstance(event, _STARTS):
            open_values.append([1, event.anchor])
            if len(open_values) - 1 > MAX_DEPTH:
                raise SpecError(f"mappings and lists are nested over {MAX_DEPTH} deep",
                                f"at most {MAX_DEPTH} levels", source=display, field=_where(event.start_mark))
        elif isinstance(event, _ENDS):
            count, anchor = open_values.pop()
            if anchor:
                sizes[anchor] = count
            open_values[-1][0] += count
        elif isinstance(event, yaml.ScalarEvent):
            open_values[-1][0] += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            open_values[-1][0] += sizes.get(event.anchor, 1)
        else:
            continue
        if sum(count for count, _ in open_values) > MAX_VALUES:
            raise SpecError(f"YAML aliases expand to over {MAX_VALUES:,} values",
                            f"a study file of at most {MAX_VALUES:,} values with aliases expanded",
                            source=display, field=_where(event.start_mark))


def parse_spec(data: dict[str, Any], *, source: Path) -> StudySpec:
    """Validate an already-parsed study (``source`` is where it notionally lives: its folder
    anchors relative paths and the default ``runs/`` stores)."""
    return _parse(data, Path(source), str(source))


def _parse(data: Any, source: Path, display: str) -> StudySpec:
    if data is None:
        raise SpecError("the study is empty", _TOP_WORDS, source=display, field="top level")
    if not isinstance(data, dict):
        what = f"expected a mapping, got {type(data).__name__}"
        raise SpecError(what, _TOP_WORDS, source=display, field="top level")
    # A study file reached through a symbolic link is the file it links to: its folder anchors relative
    # paths and the default runs/ stores, whichever link names it (the message keeps the name as typed).
    absolute = source.resolve()
    context = {"base_dir": absolute.parent, "source": absolute, "display": display}
    try:
        spec = StudySpec.model_validate(data, context=context)
    except ValidationError as err:
        field, what, accepted = explain_validation_error(err, StudySpec)
        raise SpecError(what, accepted, source=display, field=field) from None
    check_datasets(spec)
    check_backbones(spec)
    check_parts(spec)
    counts = stage_counts(spec) if _needs_counts(spec) else {}
    if counts:
        check_freeze_depths(spec, counts)
    check_hyper(spec)
    check_fixed(spec)
    check_img_sizes(spec)  # with batch sizes converted: one batch must fit in memory
    check_tuning(spec)
    check_baselines(spec, counts)
    return spec


def _needs_counts(spec: StudySpec) -> bool:
    # Counting stages builds each backbone once; skip it when no depth could be out of range.
    depths_in_space = any(d not in (0, "all") for d in spec.space.freeze_depth)
    depths_in_baselines = any(b.get("freeze_depth") not in (None, 0, "all") and "backbone" in b for b in spec.baselines)
    return depths_in_space or depths_in_baselines


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "top level"


def _yaml_where(err: yaml.YAMLError) -> str:
    return _where(getattr(err, "problem_mark", None) or getattr(err, "context_mark", None))


def _yaml_what(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None) or first_line(err)
    if isinstance(err, yaml.constructor.ConstructorError):
        return f"YAML error: {problem}"
    context = getattr(err, "context", None)
    return f"YAML syntax error: {problem}" + (f" ({context})" if context else "")


__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "load_spec", "parse_spec"]
