"""Hostile study files are refused in well under a second, with one line: an alias bomb, deep nesting,
a huge file. Aliases within the bounds still work."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
import yaml

from tl_bench.errors import SpecError
from tl_bench.spec import load_spec
from tl_bench.spec.load import MAX_BYTES, MAX_DEPTH, MAX_VALUES


def _bomb(levels: int = 9) -> str:
    """The 'billion laughs': 9 lists of 9 aliases of the list before: 342 bytes, 9**9 strings expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghij", "bcdefghijk"[: levels - 1]):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


CASES = {
    "alias bomb": (_bomb(), r"study\.yaml: line 6, column \d+: YAML aliases expand to over 100,000 values; "
                            r"accepted: a study file of at most 100,000 values with aliases expanded"),
    "deep nesting": ("name: " + "[" * 100_000 + "]" * 100_000 + "\n",
                     rf"study\.yaml: line 1, column \d+: mappings and lists are nested over {MAX_DEPTH} deep"),
    "deep mappings": ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n",
                      rf"study\.yaml: line {MAX_DEPTH + 1}, column \d+: mappings and lists are nested over"),
    "huge file": ("# " + "x" * (MAX_BYTES + 10) + "\nname: big\n",
                  rf"study\.yaml: top level: the file is [\d,]+ bytes; accepted: a study file of at most {MAX_BYTES:,} bytes"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_study_files_are_refused_at_once(tmp_path: Path, name: str) -> None:
    text, message = CASES[name]
    path = tmp_path / "study.yaml"
    path.write_text(text)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(SpecError, match=message) as caught:
        load_spec(path)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 200_000  # KiB: under 200 MB more
    assert "\n" not in str(caught.value)


def test_a_smaller_bomb_is_bounded_too(tmp_path: Path) -> None:
    assert len(_bomb().encode()) < 700
    assert 9 ** 6 > MAX_VALUES > 9 ** 5  # six levels already pass the bound
    path = tmp_path / "study.yaml"
    path.write_text(_bomb(levels=6))
    with pytest.raises(SpecError, match="YAML aliases expand to over"):
        load_spec(path)


def test_aliases_within_the_bounds_still_work(write_spec, base) -> None:  # type: ignore[no-untyped-def]
    text = yaml.safe_dump(base, sort_keys=False)
    text = text.replace("name: small", "name: &n small", 1).replace("description: two tiny backbones on digits",
                                                                     "description: *n", 1)
    assert "*n" in text
    assert load_spec(write_spec(text)).description == "small"
