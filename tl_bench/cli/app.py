"""The ``tl-bench`` Typer application and its ``list`` group.

Command modules import ``app`` / ``list_app`` from here and register
themselves with decorators; ``tl_bench.cli`` imports every command module.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
import typer
import typer.core

from tl_bench.errors import TLBenchError, did_you_mean
from tl_bench.redact import redact

# `tl-bench --help` lists commands in the order a user meets them: search, read the results, look closer,
# use the winner, then upkeep. A command missing here is listed after these.
COMMAND_ORDER = ("run", "leaderboard", "ui", "dashboard", "inspect-data", "inspect", "list", "screen", "pretrain",
                 "replay", "predict", "export", "evaluate", "refit", "soup", "ensemble", "doctor")


class _OrderedGroup(typer.core.TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER))


app = typer.Typer(
    name="tl-bench",
    cls=_OrderedGroup,
    help="Find which transfer-learning recipe works best for an image dataset, and at what cost.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help is plain text: no markup to leak, no type column (``<bool>``) beside flags
)
list_app = typer.Typer(help="List the registries: backbones, necks, heads, datasets.", no_args_is_help=True,
                       rich_markup_mode=None)
app.add_typer(list_app, name="list")


@app.callback()
def _before_command(ctx: typer.Context) -> None:
    # A command that can name an MLflow store (its --tracking-uri) waits for a store's locks as long as the
    # Optuna storage does. Asked here, once the command is known: the tracking package loads MLflow, seconds
    # that `list` and `inspect` should not pay.
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
    if command is not None and any(param.name == "tracking_uri" for param in command.params):
        from tl_bench.tracking.lock_wait import wait_for_locks

        wait_for_locks()


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (the ``--json`` contract of every command)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors, command-line mistakes included, become one line on stderr.

    Click and Typer would draw a usage box for a bad option; tl-bench answers every mistake the
    same way: ``error: <what was wrong and what is accepted>``, exit code 2 (Ctrl-C: 130).
    """
    try:
        code = app(args=argv, prog_name="tl-bench", standalone_mode=False)
    except TLBenchError as err:
        _fail(str(err), err.exit_code)
    except typer.TyperException as err:  # Typer's own click: usage errors of options and arguments
        if type(err).__name__ == "NoArgsIsHelpError":  # `tl-bench` or a group alone: the help, as asked
            err.show()  # type: ignore[attr-defined]
            raise SystemExit(0) from None
        _fail(_usage_line(err), 2)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    raise SystemExit(code if isinstance(code, int) else 0)


def _usage_line(err: typer.TyperException) -> str:
    ctx = getattr(err, "ctx", None)
    text = " ".join(err.format_message().split())  # click wraps some messages over lines
    if ctx is not None and type(err).__name__ == "NoSuchOption":  # "did you mean" worded as everywhere else
        names = [o for p in ctx.command.get_params(ctx) for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
        option = err.option_name  # type: ignore[attr-defined]
        text = f"No such option: {option}{did_you_mean(option, names)}"
    return f"{text} (see {ctx.command_path} --help)" if ctx is not None else text


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"error: {redact(message)}\n")
    raise SystemExit(code) from None


# Commands defined as plain functions in modules that do not import this one, registered here.
from tl_bench.cli.evaluate_cmd import evaluate_command  # noqa: E402
from tl_bench.cli.soup_cmd import ensemble_command, soup_command  # noqa: E402

app.command("evaluate")(evaluate_command)
app.command("soup")(soup_command)
app.command("ensemble")(ensemble_command)
from tl_bench.cli.replay_cmd import replay_command  # noqa: E402
app.command("replay")(replay_command)
