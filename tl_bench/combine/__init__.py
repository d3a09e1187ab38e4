"""Several kept models made into one challenger: a soup (``soup.make_soup``: averaged weights of models
that share a start) or an ensemble (``ensemble.make_ensemble``: averaged logits of any models), each
recorded as a run of its own kind, registered and judged by the promotion gate (``record``).

It sits above ``tl_bench.study`` and ``tl_bench.champion``, as ``tl_bench.refit`` does.
"""

from __future__ import annotations

from tl_bench.combine.ensemble import make_ensemble
from tl_bench.combine.record import CombinedOutcome
from tl_bench.combine.soup import SOUP_KEY, make_soup

__all__ = ["SOUP_KEY", "CombinedOutcome", "make_ensemble", "make_soup"]
