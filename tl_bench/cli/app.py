"""The ``tl-bench`` Typer application and its ``list`` group.

Command modules import ``app`` / ``list_app`` from here and register
themselves with decorators; ``tl_bench.cli`` imports every command module.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from tl_bench.errors import TLBenchError

app = typer.Typer(
    name="tl-bench",
    help="Find which transfer-learning recipe works best for an image dataset, and at what cost.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
list_app = typer.Typer(help="List the registries: backbones, necks, heads, datasets.", no_args_is_help=True)
app.add_typer(list_app, name="list")


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (the ``--json`` contract of every command)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, prog_name="tl-bench")
    except TLBenchError as err:
        sys.stderr.write(f"error: {err}\n")
        raise SystemExit(err.exit_code) from None
