"""The reliability tests share helpers from ``reliability_support`` (tests here import it by name)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# With --import-mode=importlib a test folder is not on sys.path; the helpers module is put there once.
sys.path.insert(0, str(Path(__file__).parent))

from reliability_support import Processes  # noqa: E402


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start ``tl-bench`` processes that cannot outlive the test, whatever its outcome."""
    started = Processes()
    yield started
    started.kill_all()
