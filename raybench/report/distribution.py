"""The report's latency distribution sections: the percentile distribution with its tail on a log
scale (HdrHistogram-style) and the CDF, for all non-warm-up requests and per class.

Both figures draw a few thousand points at most whatever the row count: the CDF at evenly spaced
ranks (:func:`~raybench.report.data.cdf_points`), the percentile distribution at a grid of
percentiles evenly spaced in ``log10(1/(1-q))``, each the exact nearest-rank value of the sorted
latencies (the same rank :mod:`raybench.judge.stats` uses). The tables are computed by
:mod:`raybench.judge.stats` itself. A threshold goes only on the curve of its own scope, as a point.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from raybench.judge.stats import percentiles, summarize
from raybench.report import plots, plots_load
from raybench.report.data import RunData, cdf_points
from raybench.report.html import format_ms, img, note, table
from raybench.report.marks import percentile_points, share_points
from raybench.report.render import figure
from raybench.report.series import rank_index

#: Percentiles of the distribution table (then the maximum).
TABLE_QS = (50.0, 90.0, 99.0, 99.9, 99.99)
#: Points of the percentile-distribution curve.
GRID_POINTS = 400


def quantile_grid(n: int, points: int = GRID_POINTS) -> np.ndarray:
    """Percentiles (in %) evenly spaced in ``log10(1/(1-q))`` from 0 % to past ``1 - 1/n``, so the
    last one is the maximum of ``n`` values."""
    if n <= 0:
        return np.array([])
    t = np.linspace(0.0, math.log10(2.0 * n), points)
    return 100.0 * (1.0 - 10.0**-t)


def distribution_curve(sorted_values: np.ndarray, points: int = GRID_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``(q_percent, value)`` of the percentile distribution of sorted values: per grid percentile
    the exact nearest-rank value (the 0 % point is the minimum)."""
    n = int(sorted_values.size)
    q = quantile_grid(n, points)
    if n == 0:
        return q, np.array([])
    idx = np.minimum(rank_index(np.full(q.size, n), q), n - 1)
    return q, sorted_values[idx]


def _scopes(run: RunData) -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, threshold scope, style)`` of every curve: all, then each class."""
    out = [("all", "all", {"color": "black", "lw": 2})]
    out += [(c, f"cls={c}", {"color": f"C{i % 10}", "lw": 1.2}) for i, c in enumerate(run.classes)]
    return out


def section_distribution(run: RunData) -> str:
    """Latency against percentile on a log tail axis, and p50 ... p99.99 and max per scope."""
    if run.measured_col("latency_ms").size == 0:
        return note("No non-warm-up requests: no latency distribution to draw.")
    scopes = _scopes(run)
    wanted = percentile_points(run.thresholds, [s for _, s, _ in scopes])
    curves: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}
    points = []
    rows = []
    for name, scope, style in scopes:
        v = run.sorted_latency(name)
        if v.size == 0:
            continue
        q, values = distribution_curve(v)
        curves[f"{name} (n={v.size:,})"] = (q, values, style)
        points += [(m.q or 0.0, m.value, m.label, style["color"]) for m in wanted[scope]]
        ps = percentiles(v, TABLE_QS)
        rows.append([name, f"{v.size:,}", *(format_ms(ps[q]) for q in TABLE_QS), format_ms(float(v[-1]))])
    text = (
        "x: the percentile on a log scale of 1/(1 - q), so 90 %, 99 %, 99.9 % and 99.99 % are equally "
        "far apart and the tail is as wide as the body; y: the latency at that percentile (exact "
        "nearest-rank over the non-warm-up requests). A curve ends at its maximum; a percentile finer "
        "than 1/count (p99.99 of fewer than 10,000 requests) is the maximum."
    )
    if points:
        text += " Markers: SLA percentile thresholds of that curve's scope; it passes if the curve runs under them."
    return "\n".join(
        [
            img(figure(plots_load.percentile_distribution, curves, points), "latency percentile distribution"),
            table(("scope", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"), rows),
            note(text),
        ]
    )


def section_cdf(run: RunData) -> str:
    """Empirical latency CDF per class, with the exact percentiles as a table."""
    if run.measured_col("latency_ms").size == 0:
        return note("No non-warm-up requests: nothing to draw.")
    scopes = _scopes(run)
    wanted = share_points(run.thresholds, [s for _, s, _ in scopes])
    drawn: dict[str, np.ndarray] = {}
    styles: dict[str, dict[str, Any]] = {}
    points = []
    rows = []
    for name, scope, style in scopes:
        v = run.sorted_latency(name)
        if v.size == 0:
            continue
        s = summarize(v)
        rows.append(
            [name, f"{int(s['count']):,}", *(format_ms(s[k]) for k in ("mean", "p50", "p90", "p99", "p999", "max"))]
        )
        label = f"{name} (n={v.size:,})"
        drawn[label], styles[label] = cdf_points(v), style
        points += [(m.limit_ms or 0.0, m.value, m.label, style["color"]) for m in wanted[scope]]
    parts = [
        img(figure(plots.cdf, drawn, points, styles=styles), "latency CDF per class"),
        table(("class", "count", "mean", "p50", "p90", "p99", "p99.9", "max"), rows),
    ]
    if points:
        parts.append(
            note("Markers: share(latency<X) thresholds of that curve's scope; it passes if the curve is above.")
        )
    return "\n".join(parts)
