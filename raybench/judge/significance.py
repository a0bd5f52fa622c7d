"""The statistics of a comparison: relative change, the bootstrap test with its interval, the verdict.

One distribution gives both the interval and the p-value of a row, so that they cannot disagree:
for ``B`` replicated relative changes ``r`` (a block bootstrap, :mod:`raybench.judge.compare`),

* ``p = min(1, 2 * (min(#{r <= 0}, #{r >= 0}) + 1) / (B + 1))`` (two-sided; the ``+ 1`` counts
  the observed data as one of the replicates, so ``p`` is never 0), and
* the interval at level ``1 - a`` is ``[r_(i), r_(B-1-i)]`` (0-based order statistics) with
  ``i = ceil(a * (B + 1) / 2) - 2`` (checked against the floating-point test itself, so that
  rounding at an exact boundary cannot split them): about ``a/2`` of the replicates lie beyond
  each end.

For any ``a``, ``p < a`` exactly when that interval excludes 0 (:func:`bootstrap_test`; proof: with
``c = #{r <= 0}``, ``r_(i) > 0`` iff ``c <= i`` iff ``c + 1 < a (B + 1) / 2``, since ``c`` is an
integer; likewise for the upper end). When ``2 / (B + 1) >= a`` no replicate count can reach ``a``:
the interval is unbounded and ``p >= a``.

:func:`smallest_p` is how low a p-value the data can support at all; :func:`verdict` turns a row's
change, p-value and that floor into its verdict.

Pure module: numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Verdicts of a row, from worst to most neutral.
VERDICTS = ("regression", "improvement", "inconclusive", "insignificant change", "same", "n/a")


def relative_change(current: Any, baseline: Any) -> Any:
    """``(current - baseline) / |baseline|``; 0 when both are 0; ±inf when only the baseline is 0."""
    cur, base = np.asarray(current, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (cur - base) / np.abs(base)
    out = np.where((base == 0) & (cur == 0), 0.0, out)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class BootstrapTest:
    """Result of :func:`bootstrap_test`: the interval at level ``1 - alpha``, the two-sided
    ``p_value``, and ``replicates`` (those used: NaN ones are dropped)."""

    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    replicates: int


def bootstrap_test(replicates: Any, alpha: float) -> BootstrapTest:
    """The p-value of "no change" and the interval at level ``1 - alpha``, from one set of replicates.

    Args:
        replicates: bootstrap replicates of the relative change (NaN entries are ignored).
        alpha: the test's level; the interval excludes 0 exactly when ``p_value < alpha`` (see the
            module docstring). Given as ``alpha`` rather than as a confidence level so that no
            rounding in ``1 - level`` can move the interval's ends.

    Returns:
        :class:`BootstrapTest`; NaN everywhere when no replicate is left.

    Raises:
        ValueError: ``alpha`` is not in (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} must be between 0 and 1")
    r = np.asarray(replicates, dtype=np.float64).ravel()
    r = np.sort(r[~np.isnan(r)])
    b = r.size
    if b == 0:
        return BootstrapTest(math.nan, math.nan, math.nan, alpha, 0)

    def rejects(count: int) -> bool:  # the same floating-point expression as the p-value
        return 2.0 * (count + 1) / (b + 1) < alpha

    below, above = int(np.count_nonzero(r <= 0)), int(np.count_nonzero(r >= 0))
    p = min(1.0, 2.0 * (min(below, above) + 1) / (b + 1))
    # i: the largest count that rejects; about ceil(alpha (B + 1) / 2) - 2, settled on the very
    # expression above so that rounding at an exact boundary cannot split the interval from p.
    i = math.ceil(alpha * (b + 1) / 2) - 2
    while rejects(i + 1):
        i += 1
    while i >= 0 and not rejects(i):
        i -= 1
    if i < 0:  # too few replicates to reach this level: every value is plausible
        return BootstrapTest(-math.inf, math.inf, p, alpha, b)
    return BootstrapTest(float(r[i]), float(r[b - 1 - i]), p, alpha, b)


def smallest_p(windows_baseline: int, windows_current: int, replicates: int) -> float:
    """The smallest two-sided p-value that ``windows_baseline`` vs ``windows_current`` windows allow.

    Windows are the unit of the bootstrap, so the data can support no more than a test that treats
    them as exchangeable units can give: ``2 / C(n1 + n2, n1)``, reached when every window of one
    run is worse than every window of the other (3 vs 3 windows: 0.1; 20 vs 20: 1.5e-11). The
    bootstrap's own resolution, ``2 / (B + 1)``, is the other floor; the larger one is returned.
    A row whose floor is not below its level cannot be called significant whatever the change.
    """
    if windows_baseline < 1 or windows_current < 1 or replicates < 1:
        return 1.0
    return min(1.0, max(2.0 / math.comb(windows_baseline + windows_current, windows_baseline), 2.0 / (replicates + 1)))


def verdict(
    change: float,
    p_value: float,
    p_floor: float,
    *,
    threshold: float,
    alpha: float,
    lower_is_better: bool,
) -> str:
    """The verdict of one row.

    Args:
        change: relative change, current vs baseline.
        p_value: two-sided p-value (:func:`bootstrap_test`), unadjusted, of "the change is no
            further than the threshold" (the caller tests the replicates against the threshold on
            the change's side when the change is past it).
        p_floor: :func:`smallest_p` of the row.
        threshold: smallest relative change that matters (0.1 = 10 %).
        alpha: the row's own significance level (for a primary metric: the family's alpha divided
            by the number of primary metrics).
        lower_is_better: True for latency-like metrics, False for throughput.

    Returns:
        ``n/a`` without a change; ``same`` when ``|change| <= threshold``; beyond the threshold,
        ``inconclusive`` when ``p_floor >= alpha`` (the data cannot reach the level), else
        ``regression`` or ``improvement`` when ``p_value < alpha`` (the interval at ``1 - alpha``
        lies wholly past the threshold), else ``insignificant change``.
    """
    if math.isnan(change):
        return "n/a"
    if abs(change) <= threshold:
        return "same"
    if p_floor >= alpha:
        return "inconclusive"
    if not p_value < alpha:
        return "insignificant change"
    return "regression" if (change > 0) == lower_is_better else "improvement"
