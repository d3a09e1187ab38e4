"""tl-bench: find which transfer-learning recipe works best for an image dataset, and at what cost."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
