"""Exact summary statistics over recorded samples.

Method: percentiles are the *inverted CDF* (nearest-rank) percentile, the smallest recorded value
``v`` such that at least ``q`` % of the samples are ``<= v``. The reported value is always one that was
measured (no interpolation between two requests), and ``p99 <= x`` holds exactly when at least 99 %
of the samples are ``<= x``. Every function here raises ``ValueError`` on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The percentiles every summary reports.
SUMMARY_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)


def percentile(values: Any, q: float) -> float:
    """The exact nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; NaN when empty."""
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile {q} is outside (0, 100]")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan
    return float(np.percentile(arr, q, method="inverted_cdf"))


def percentiles(values: Any, qs: Sequence[float] = SUMMARY_PERCENTILES) -> dict[float, float]:
    """Several exact percentiles at once (one sort)."""
    for q in qs:
        if not 0.0 < q <= 100.0:
            raise ValueError(f"percentile {q} is outside (0, 100]")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {q: math.nan for q in qs}
    out = np.percentile(arr, list(qs), method="inverted_cdf")
    return {q: float(v) for q, v in zip(qs, out, strict=True)}


def summarize(values: Any) -> dict[str, float]:
    """count, mean, p50, p90, p95, p99, p99.9 and max of ``values`` (NaN for an empty input)."""
    arr = np.asarray(values, dtype=np.float64)
    ps = percentiles(arr)
    return {
        "count": float(arr.size),
        "mean": float(arr.mean()) if arr.size else math.nan,
        "p50": ps[50.0],
        "p90": ps[90.0],
        "p95": ps[95.0],
        "p99": ps[99.0],
        "p999": ps[99.9],
        "max": float(arr.max()) if arr.size else math.nan,
    }
