"""Store errors of a tracker call as one ``StorageError`` line, and the clock MLflow records."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tl_bench.errors import TLBenchError
from tl_bench.faults import store_error
from tl_bench.tracking.store import store_label

F = TypeVar("F", bound=Callable[..., Any])


def _now_ms() -> int:
    return int(time.time() * 1000)


def _guarded(method: F) -> F:
    """The method's store errors as one ``StorageError`` line naming the store."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except TLBenchError:
            raise
        except Exception as err:  # MLflow, SQLAlchemy, requests and OS errors alike
            raise store_error(err, store_label(self.tracking_uri), self.tracking_uri or "") from err

    return call  # type: ignore[return-value]
