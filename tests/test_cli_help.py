"""`tl-bench --help` lists every command, in the order a user meets them."""

from __future__ import annotations

import importlib
import re

import pytest

import tl_bench.cli  # noqa: F401  (imports every command module)

cli_app = importlib.import_module("tl_bench.cli.app")  # the module (the package exports its Typer app as `app`)


def test_help_lists_commands_in_the_workflow_order_and_misses_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli_app.main(["--help"])
    assert done.value.code == 0
    listed = re.findall(r"^  (\S+)\s{2,}", capsys.readouterr().out.split("Commands:")[1], flags=re.M)
    assert listed[:3] == ["run", "leaderboard", "ui"]
    # Every command has its place: one added later must be placed, not appended wherever it was imported.
    assert listed == list(cli_app.COMMAND_ORDER)
