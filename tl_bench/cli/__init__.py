"""Command-line interface: ``tl-bench COMMAND``. Each command lives in its own module."""

from __future__ import annotations

from tl_bench.cli.app import app, main

# Command modules register themselves on import.
from tl_bench.cli import models_cmd  # noqa: E402,F401  list backbones/necks/heads, inspect
from tl_bench.cli import data_cmd  # noqa: E402,F401
from tl_bench.cli import run_cmd  # noqa: E402,F401  run
from tl_bench.cli import doctor_cmd  # noqa: E402,F401  doctor
from tl_bench.cli import pretrain_cmd  # noqa: E402,F401  pretrain
from tl_bench.cli import leaderboard_cmd  # noqa: E402,F401
from tl_bench.cli import screen_cmd  # noqa: E402,F401  screen
from tl_bench.cli import export_cmd  # noqa: E402,F401  export
from tl_bench.cli import predict_cmd  # noqa: E402,F401  predict
from tl_bench.cli import refit_cmd  # noqa: E402,F401  refit

__all__ = ["app", "main"]
