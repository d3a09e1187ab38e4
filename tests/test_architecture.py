"""The rules docs/architecture.md states, checked on the source of every module of tl_bench.

Each module is parsed with ``ast``; every import counts, wherever it stands: at module level,
inside a function (a deferred import is still a dependency), or under ``if TYPE_CHECKING:``.
Relative imports are resolved against the importing module, ``from tl_bench.x import y``
depends on ``tl_bench.x.y`` when ``y`` is a module, and importing ``tl_bench.x.y`` from outside
``tl_bench.x`` depends on the package ``tl_bench.x`` too (its ``__init__`` runs first). Each
failure names the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tl_bench"

# Optuna's private API: modules and names starting with "_" under optuna, and the private
# attributes tl-bench reads from its storage, trials and studies.
OPTUNA_PRIVATE_ATTRS = frozenset({"_storage", "_trial_id", "_study_id", "_cached_frozen_trial"})


@dataclass(frozen=True)
class Import:
    file: str  # path from the repository root, e.g. tl_bench/study/trial.py
    line: int
    module: str  # absolute module imported, e.g. optuna.storages._rdb
    names: tuple[str, ...]  # the names of ``from module import a, b``; () for ``import module``

    @property
    def where(self) -> str:
        shown = f"from {self.module} import {', '.join(self.names)}" if self.names else f"import {self.module}"
        return f"{self.file}:{self.line}: {shown}"

    def targets(self) -> set[str]:
        """Every module this statement names: ``from pkg import sub`` names ``pkg.sub`` when it is a module."""
        submodules = {f"{self.module}.{name}" for name in self.names if f"{self.module}.{name}" in modules()}
        if self.names and len(submodules) == len(self.names):
            return submodules  # ``from pkg import a, b`` of modules only: pkg itself is not used
        return {self.module} | submodules


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of tl_bench by its dotted name (a package by its ``__init__.py``)."""
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@cache
def _tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _file(module: str) -> str:
    return modules()[module].relative_to(ROOT).as_posix()


def _imports(tree: ast.Module, module: str, *, is_package: bool, file: str) -> tuple[Import, ...]:
    """Every import statement in ``tree`` (the source of ``module``), at any depth."""
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(file, node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            found.append(Import(file, node.lineno, _resolve(node, module, is_package), names))
    return tuple(found)


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    return _imports(_tree(module), module, is_package=modules()[module].name == "__init__.py", file=_file(module))


def _all_imports() -> Iterator[tuple[str, Import]]:
    for module in modules():
        for imp in imports_of(module):
            yield module, imp


def _is(module: str, *roots: str) -> bool:
    """Whether ``module`` is one of ``roots`` or inside one of them."""
    return any(module == root or module.startswith(root + ".") for root in roots)


def _violations(importers: Iterable[str], *forbidden: str) -> list[str]:
    return [imp.where for module in importers for imp in imports_of(module)
            if any(_is(target, *forbidden) for target in imp.targets())]


def _inside(*roots: str) -> list[str]:
    return [m for m in modules() if _is(m, *roots)]


def _outside(*roots: str) -> list[str]:
    return [m for m in modules() if not _is(m, *roots)]


def _fail_message(rule: str, found: list[str]) -> str:
    return f"{rule}; found:\n  " + "\n  ".join(found)


PROBE = """
from typing import TYPE_CHECKING
import mlflow.tracking
from . import app
from ..doctor import finding
from tl_bench.tracking import names, Tracker
if TYPE_CHECKING:
    from tl_bench.spec import StudySpec
def later():
    import optuna.storages._rdb
"""


def test_the_parser_sees_every_kind_of_import() -> None:
    """Guards the rules below: a rule that sees no import would pass on anything."""
    found = _imports(ast.parse(PROBE), "tl_bench.cli.probe", is_package=False, file="tl_bench/cli/probe.py")
    targets = {t for imp in found for t in imp.targets()}
    assert targets == {
        "typing", "mlflow.tracking",  # module level
        "tl_bench.cli.app", "tl_bench.doctor.finding",  # relative, naming submodules only
        "tl_bench.tracking", "tl_bench.tracking.names",  # a submodule and a name of the package
        "tl_bench.spec",  # under TYPE_CHECKING
        "optuna.storages._rdb",  # inside a function
    }
    assert found[-1].where == "tl_bench/cli/probe.py:10: import optuna.storages._rdb"
    assert len(modules()) > 100 and "tl_bench.study.storage" in modules()
    # importing a submodule runs its package first, unless the importer is inside that package
    assert _loaded_with("tl_bench.study.progress", "tl_bench.pretrain") == ["tl_bench.study", "tl_bench.study.progress"]
    assert _loaded_with("tl_bench.study.storage", "tl_bench.study.runner") == ["tl_bench.study.storage"]


def test_mlflow_is_imported_only_in_tracking() -> None:
    found = _violations(_outside("tl_bench.tracking"), "mlflow")
    assert not found, _fail_message("MLflow is imported only in tl_bench/tracking/", found)


def test_optuna_private_api_is_used_only_in_study_storage() -> None:
    found = []
    for module in _outside("tl_bench.study.storage"):
        for imp in imports_of(module):
            if _is(imp.module, "optuna") and (
                any(part.startswith("_") for part in imp.module.split("."))
                or any(name.startswith("_") for name in imp.names)
            ):
                found.append(imp.where)
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.Attribute) and node.attr in OPTUNA_PRIVATE_ATTRS:
                found.append(f"{_file(module)}:{node.lineno}: .{node.attr}")
    assert not found, _fail_message("Optuna's private API is used only in tl_bench/study/storage.py", found)


def test_timm_is_imported_only_by_models_train_and_the_list_command() -> None:
    allowed = ("tl_bench.models", "tl_bench.train", "tl_bench.cli.models_cmd")
    found = _violations(_outside(*allowed), "timm")
    assert not found, _fail_message(
        "timm is imported only in tl_bench/models/, tl_bench/train/ and tl_bench/cli/models_cmd.py", found)


def test_spec_and_config_do_not_import_torch() -> None:
    found = _violations(_inside("tl_bench.spec", "tl_bench.config"), "torch", "torchvision")
    assert not found, _fail_message("tl_bench/spec/ and tl_bench/config.py never import torch", found)


def test_spec_never_imports_optuna() -> None:
    found = _violations(_inside("tl_bench.spec"), "optuna")
    assert not found, _fail_message("tl_bench/spec/ never imports Optuna", found)


def test_training_imports_neither_optuna_nor_mlflow_nor_study_nor_tracking() -> None:
    found = _violations(_inside("tl_bench.train"), "optuna", "mlflow", "tl_bench.study", "tl_bench.tracking")
    assert not found, _fail_message(
        "tl_bench/train/ never imports optuna, mlflow, tl_bench.study or tl_bench.tracking", found)


def test_tracking_never_trains() -> None:
    found = _violations(_inside("tl_bench.tracking"), "tl_bench.train", "tl_bench.study")
    assert not found, _fail_message("tl_bench/tracking/ never imports tl_bench.train or tl_bench.study", found)


def test_report_reads_through_tracking_only() -> None:
    found = _violations(_inside("tl_bench.report"), "optuna", "tl_bench.study", "tl_bench.train")
    assert not found, _fail_message(
        "tl_bench/report/ imports neither optuna nor tl_bench.study nor tl_bench.train", found)


def test_study_does_not_import_report() -> None:
    """The caller renders reports after a study; the study layer never calls up into them."""
    found = _violations(_inside("tl_bench.study"), "tl_bench.report")
    assert not found, _fail_message("tl_bench/study/ never imports tl_bench.report", found)


def _loaded_with(target: str, importer: str) -> list[str]:
    """``target`` and the packages above it that importing it runs, but for ``importer``'s own packages
    (a module is imported from inside them) and ``tl_bench`` itself (it imports nothing)."""
    parts = target.split(".")
    chain = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
    return [m for m in chain if m in modules() and not importer.startswith(m + ".") and m != importer]


def import_graph() -> dict[str, dict[str, Import]]:
    """tl_bench module -> the tl_bench modules it imports, each with the first statement that does.

    Importing ``tl_bench.study.progress`` runs ``tl_bench/study/__init__.py`` first, so that import
    depends on the package too."""
    graph: dict[str, dict[str, Import]] = {module: {} for module in modules()}
    for module, imp in _all_imports():
        for target in sorted(imp.targets()):
            for loaded in _loaded_with(target, module):
                graph[module].setdefault(loaded, imp)
    return graph


def _components(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _cycle_through(graph: dict[str, dict[str, Import]], start: str, members: set[str]) -> list[str]:
    """A shortest cycle from ``start`` back to itself inside one component (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")


def describe_cycles(graph: dict[str, dict[str, Import]]) -> list[str]:
    """One block per import cycle (the shortest through each module of a tangle, each cycle once):
    the modules in turn, then every step with the import that makes it."""
    blocks = []
    for component in _components(graph):
        seen: set[tuple[str, ...]] = set()
        for member in component:
            path = _cycle_through(graph, member, set(component))
            turn = path.index(min(path[:-1]))
            key = tuple(path[turn:-1] + path[:turn])
            if key in seen:
                continue
            seen.add(key)
            path = [*key, key[0]]
            steps = [f"    {a} -> {b}  ({graph[a][b].where})" for a, b in zip(path, path[1:])]
            blocks.append(" -> ".join(path) + "\n" + "\n".join(steps))
    return blocks


def test_no_import_cycle_between_tl_bench_modules() -> None:
    cycles = describe_cycles(import_graph())
    assert not cycles, _fail_message("no import cycle between tl_bench modules", cycles)


def test_the_cycle_finder_names_the_cycle() -> None:
    """The finder itself, on a small made-up graph: a -> b -> c -> a, and d outside it."""
    stub = Import("x.py", 1, "m", ())
    graph = {"a": {"b": stub}, "b": {"c": stub}, "c": {"a": stub, "d": stub}, "d": {}}
    (block,) = describe_cycles(graph)
    assert block.startswith("a -> b -> c -> a")
    assert describe_cycles({"a": {"b": stub}, "b": {}}) == []
