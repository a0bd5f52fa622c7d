"""Change-point detection over a series of runs (e.g. nightly p99): where did a shift begin?

Method: E-divisive means (Matteson & James, "A Nonparametric Approach for Multiple Change Point
Analysis of Multivariate Data", JASA 2014), the algorithm behind MongoDB's signal-processing work and
Hunter. For a segment ``x[0:n]`` and a split ``tau`` the energy statistic is::

    Q(tau) = tau (n - tau) / n * ( 2 * mean|x_i - x_j|      (i < tau <= j, across)
                                 -     mean|x_i - x_k|      (i < k < tau, left)
                                 -     mean|x_j - x_l| )    (tau <= j < l, right)

The best split maximises ``Q``; its significance is a permutation test: the segment is shuffled
``permutations`` times (seeded) and ``p = (1 + #{max Q of a shuffle >= observed}) / (1 +
permutations)``. A significant split (``p < alpha``) is kept and both halves are searched again
(binary segmentation) until no segment has a significant split. Segments shorter than ``min_size``
on either side of a split are not considered.

Pure numpy; no Ray. Every function raises ``ValueError`` on bad input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Default significance level of a split.
DEFAULT_ALPHA = 0.01
#: Default number of permutations of the significance test.
DEFAULT_PERMUTATIONS = 499
#: Default smallest number of runs on each side of a change point.
DEFAULT_MIN_SIZE = 3


@dataclass(frozen=True)
class ChangePoint:
    """A detected shift.

    Attributes:
        index: position in the series of the first value after the shift.
        p_value: permutation p-value of the split when it was found.
        mean_before: mean of the segment before ``index`` (up to the previous change point).
        mean_after: mean of the segment from ``index`` (up to the next change point).
        change: ``(mean_after - mean_before) / |mean_before|`` (inf when ``mean_before`` is 0).
    """

    index: int
    p_value: float
    mean_before: float
    mean_after: float
    change: float


def energy_statistic(x: Any) -> np.ndarray:
    """``Q(tau)`` of the module docstring for every split ``tau`` in ``1 .. n-1`` of ``x``.

    Args:
        x: a series of length ``n``, or a 2-D array whose rows are series (computed at once).

    Returns:
        An array of length ``n + 1`` (per row); entries 0 and ``n`` (no split) are ``-inf``. With a
        single value on a side, that side's within-distance term is 0.

    Raises:
        ValueError: ``x`` has more than two dimensions or holds NaN.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (1, 2) or np.isnan(arr).any():
        raise ValueError("energy_statistic needs a series (or rows of series) without NaN")
    rows = arr.reshape(-1, arr.shape[-1])
    n = rows.shape[1]
    out = np.full((rows.shape[0], n + 1), -np.inf)
    if n >= 2:
        dist = np.abs(rows[:, :, None] - rows[:, None, :])
        # prefix[r, a, b] = sum of dist[r, :a, :b]
        prefix = np.zeros((rows.shape[0], n + 1, n + 1))
        prefix[:, 1:, 1:] = dist.cumsum(axis=1).cumsum(axis=2)
        tau = np.arange(1, n)
        left_n, right_n = tau, n - tau
        diag = prefix[:, tau, tau]
        to_end = prefix[:, tau, n]
        within_l = diag / 2.0
        within_r = (prefix[:, n, n][:, None] - 2.0 * to_end + diag) / 2.0
        pairs_l = np.maximum(left_n * (left_n - 1) / 2.0, 1.0)
        pairs_r = np.maximum(right_n * (right_n - 1) / 2.0, 1.0)
        mean_x = (to_end - diag) / (left_n * right_n)
        out[:, 1:n] = left_n * right_n / n * (2.0 * mean_x - within_l / pairs_l - within_r / pairs_r)
    return out[0] if arr.ndim == 1 else out


def _best_split(x: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Index and value of the largest ``Q`` of each row of ``x`` (2-D), ``min_size`` on each side."""
    q = energy_statistic(x)
    n = x.shape[1]
    q[:, :min_size] = -np.inf
    q[:, n - min_size + 1 :] = -np.inf
    tau = np.argmax(q, axis=1)
    return tau, q[np.arange(q.shape[0]), tau]


#: Distance-matrix cells evaluated at once in the permutation test (memory bound, ~32 MB of floats).
_BATCH_CELLS = 4_000_000


def _split_p(x: np.ndarray, observed: float, min_size: int, permutations: int, rng: np.random.Generator) -> float:
    hits = 0
    step = max(1, min(permutations, _BATCH_CELLS // (x.size * x.size)))
    for lo in range(0, permutations, step):
        batch = rng.permuted(np.tile(x, (min(step, permutations - lo), 1)), axis=1)
        hits += int((_best_split(batch, min_size)[1] >= observed - 1e-12 * abs(observed)).sum())
    return (1 + hits) / (1 + permutations)


def detect(
    series: Any,
    *,
    alpha: float = DEFAULT_ALPHA,
    permutations: int = DEFAULT_PERMUTATIONS,
    min_size: int = DEFAULT_MIN_SIZE,
    seed: int = 0,
) -> list[ChangePoint]:
    """Change points of ``series`` by E-divisive means with a permutation test (module docstring).

    Args:
        series: values in run order (NaN not allowed: drop runs without the metric first).
        alpha: a split is kept when its permutation p-value is below this.
        permutations: shuffles per significance test (the smallest possible p is
            ``1 / (permutations + 1)``, so it must allow ``p < alpha``).
        min_size: fewest values on each side of a change point.
        seed: seeds the permutations, so the result is reproducible.

    Returns:
        Change points sorted by index; empty when none is significant or the series is shorter than
        ``2 * min_size``.

    Raises:
        ValueError: bad parameters or NaN in the series.

    Example:
        >>> [c.index for c in detect([10.0] * 10 + [20.0] * 10)]
        [10]
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 1 or np.isnan(x).any():
        raise ValueError("detect needs a one-dimensional series without NaN")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} must be between 0 and 1")
    if min_size < 1:
        raise ValueError(f"min_size {min_size} must be at least 1")
    if 1 / (permutations + 1) >= alpha:
        raise ValueError(f"{permutations} permutations cannot reach p < {alpha}; use more")
    rng = np.random.default_rng(seed)
    found: dict[int, float] = {}
    pending = [(0, x.size)]
    while pending:
        start, end = pending.pop()
        seg = x[start:end]
        if seg.size < 2 * min_size or np.ptp(seg) == 0:
            continue
        taus, qs = _best_split(seg[None, :], min_size)
        tau, q = int(taus[0]), float(qs[0])
        if not math.isfinite(q) or q <= 0:
            continue
        p = _split_p(seg, q, min_size, permutations, rng)
        if p < alpha:
            found[start + tau] = p
            pending += [(start, start + tau), (start + tau, end)]
    bounds = [0, *sorted(found), x.size]
    out = []
    for before, idx, after in zip(bounds, bounds[1:], bounds[2:], strict=False):
        m0, m1 = float(x[before:idx].mean()), float(x[idx:after].mean())
        change = (m1 - m0) / abs(m0) if m0 != 0 else (0.0 if m1 == 0 else math.copysign(math.inf, m1))
        out.append(ChangePoint(idx, found[idx], m0, m1, change))
    return out


def format_history(
    metric: str, run_ids: list[str], values: list[float], points: list[ChangePoint], fmt: Any = str
) -> list[str]:
    """Lines showing a metric per run and the detected change points.

    Args:
        metric: the metric's name, for the header.
        run_ids: run ids in series order.
        values: the metric per run (NaN: the run has no data for it; it was left out of detection).
        points: change points whose ``index`` is into ``values``.
        fmt: formats one value.
    """
    starts = {p.index: p for p in points}
    lines = [f"{metric}: {len(run_ids)} runs"]
    width = max(len(r) for r in run_ids) if run_ids else 0
    prev = math.nan
    for i, (run_id, value) in enumerate(zip(run_ids, values, strict=True)):
        step = "" if math.isnan(prev) or math.isnan(value) or prev == 0 else f"{(value - prev) / abs(prev):+.1%}"
        mark = "  <- shift begins" if i in starts else ""
        shown = fmt(value) if not math.isnan(value) else "-"
        lines.append(f"  {run_id.ljust(width)}  {shown:>10}  {step:>7}{mark}".rstrip())
        if not math.isnan(value):
            prev = value
    if not points:
        lines.append("no change point")
    for p in points:
        lines.append(
            f"change point at run {run_ids[p.index]} (#{p.index}): mean {fmt(p.mean_before)} -> "
            f"{fmt(p.mean_after)} ({p.change:+.1%}), p={p.p_value:.3g}"
        )
    return lines
