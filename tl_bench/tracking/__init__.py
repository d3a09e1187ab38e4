"""The MLflow boundary: the only code of tl-bench that imports MLflow.

``names`` holds every tag, kind and metric name; ``store`` finds the store a
command reads; ``write`` is the Tracker that records studies; ``read`` reads
runs back, page by page, for the leaderboard, ``doctor`` and reconciliation;
``logged_models`` logs kept trials' models and registers winners (imported on its own:
it loads MLflow's PyTorch and pyfunc flavours, which most commands never need). Imported on their
own too: ``view`` (how an experiment opens in MLflow's UI), ``assets`` (the store's one copy of
plotly.js for HTML artifacts), ``system`` (MLflow's system metrics for trial runs).
"""

from __future__ import annotations

from tl_bench.tracking import settings

# Before MLflow is first imported: telemetry, printed URLs, server time-outs, duplicate error logs.
settings.apply()

import mlflow  # noqa: E402

from tl_bench.versions import check_tested  # noqa: E402

check_tested("mlflow", mlflow.__version__)  # its SQLAlchemy store and sessions are used beyond the public API

from tl_bench.tracking import names, read, store, write  # noqa: E402
from tl_bench.tracking.names import *  # noqa: E402,F403
from tl_bench.tracking.read import *  # noqa: E402,F403
from tl_bench.tracking.store import *  # noqa: E402,F403
from tl_bench.tracking.write import *  # noqa: E402,F403

__all__ = [*names.__all__, *read.__all__, *store.__all__, *write.__all__]
