"""The reliability tests share helpers from ``reliability_support`` (tests here import it by name)."""

from __future__ import annotations

import sys
from pathlib import Path

# With --import-mode=importlib a test folder is not on sys.path; the helpers module is put there once.
sys.path.insert(0, str(Path(__file__).parent))
