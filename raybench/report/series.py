"""Grouped exact statistics without a Python loop over rows: per time bucket (1 s of completion
time) or per group code (a region, a node, a window), counts and exact nearest-rank percentiles.

Pure numpy. Every percentile is the one :mod:`raybench.judge.stats` gives for the same group
(``np.percentile(..., method="inverted_cdf")``): the rank is computed with numpy's own formula for
that method, on values sorted once for all groups, so a 1,000,000-row run costs one sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Length of a time bucket, ns (1 s: the resolution of the report's time series).
BUCKET_NS = 1_000_000_000
#: Most buckets a series gets; a longer run gets buckets of several whole seconds.
MAX_BUCKETS = 3600


def rank_index(n: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    """Index into a sorted group of ``n`` (> 0) values of its exact nearest-rank ``q``-th percentile
    (0 < q <= 100; or an array of them), by numpy's ``inverted_cdf`` formula: ``j = n q/100 - 1``,
    ``floor(j)`` when ``j`` is whole, else ``floor(j) + 1``, never below 0."""
    virtual = np.asarray(n, dtype=np.int64) * np.true_divide(q, 100) - 1
    prev = np.floor(virtual)
    idx = np.where(virtual - prev == 0, prev, prev + 1).astype(np.int64)
    return np.clip(idx, 0, None)


@dataclass(frozen=True)
class Groups:
    """Values grouped by an integer code ``0..n_groups-1``, each group sorted ascending.

    ``values[starts[g]:starts[g] + counts[g]]`` is group ``g``, sorted. NaN values are left out.
    """

    values: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.counts.size)

    def percentile(self, q: float) -> np.ndarray:
        """Per group, the exact nearest-rank ``q``-th percentile; NaN for an empty group."""
        out = np.full(self.n_groups, np.nan)
        has = self.counts > 0
        if has.any():
            out[has] = self.values[self.starts[has] + rank_index(self.counts[has], q)]
        return out

    def max(self) -> np.ndarray:
        out = np.full(self.n_groups, np.nan)
        has = self.counts > 0
        out[has] = self.values[self.starts[has] + self.counts[has] - 1]
        return out

    def sums(self) -> np.ndarray:
        """Per group, the sum of its values (0 for an empty group)."""
        ends = np.concatenate([[0.0], np.cumsum(self.values)])
        return ends[self.starts + self.counts] - ends[self.starts]


def group(codes: np.ndarray, values: np.ndarray, n_groups: int, order: np.ndarray | None = None) -> Groups:
    """Sort ``values`` by ``(code, value)``; codes outside ``0..n_groups-1`` and NaN values are
    left out. ``order``, when given, is ``np.argsort(values)`` (computed once for several
    groupings: then this is one linear-time radix sort of the codes)."""
    codes = np.asarray(codes)
    values = np.asarray(values, dtype=np.float64)
    if order is None:
        order = np.argsort(values)
    by_code, by_value = codes[order], values[order]
    keep = (by_code >= 0) & (by_code < n_groups) & ~np.isnan(by_value)
    if not keep.all():
        by_code, by_value = by_code[keep], by_value[keep]
    # Small integer codes sort stably by radix sort (numpy's stable sort of <= 16-bit integers).
    by_code = by_code.astype(np.int16 if n_groups <= np.iinfo(np.int16).max else np.int64)
    by_value = by_value[np.argsort(by_code, kind="stable")]
    counts = np.bincount(by_code, minlength=n_groups)[:n_groups].astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return Groups(by_value, starts, counts)


@dataclass(frozen=True)
class Buckets:
    """A time axis of equal buckets from ``t0_ns``: bucket ``k`` is ``[t0 + k b, t0 + (k+1) b)``."""

    t0_ns: int
    bucket_ns: int
    n: int

    @property
    def bucket_s(self) -> float:
        return self.bucket_ns / 1e9

    def index(self, ts_ns: np.ndarray) -> np.ndarray:
        """The bucket of each time (may be < 0 or >= n: outside the axis)."""
        return (np.asarray(ts_ns, dtype=np.int64) - self.t0_ns) // self.bucket_ns

    def starts_s(self) -> np.ndarray:
        """Bucket starts, seconds since ``t0``."""
        return np.arange(self.n) * self.bucket_s

    def counts(self, ts_ns: np.ndarray) -> np.ndarray:
        """Rows per bucket (rows outside the axis left out)."""
        k = self.index(ts_ns)
        k = k[(k >= 0) & (k < self.n)]
        return np.bincount(k, minlength=self.n)[: self.n]

    def per_second(self, ts_ns: np.ndarray) -> np.ndarray:
        """Rows per bucket divided by the bucket's seconds (completions per second)."""
        return self.counts(ts_ns) / self.bucket_s

    def percentiles(
        self, ts_ns: np.ndarray, values: np.ndarray, qs: Sequence[float], order: np.ndarray | None = None
    ) -> dict[float, np.ndarray]:
        """Per bucket, the exact nearest-rank percentiles of ``values`` (NaN for an empty bucket);
        ``order`` as for :func:`group`."""
        g = group(self.index(ts_ns), values, self.n, order)
        return {q: g.percentile(q) for q in qs}

    def crosstab(self, ts_ns: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
        """``[bucket, code]`` row counts (rows outside the axis left out)."""
        k = self.index(ts_ns)
        ok = (k >= 0) & (k < self.n)
        flat = k[ok] * n_codes + np.asarray(codes, dtype=np.int64)[ok]
        return np.bincount(flat, minlength=self.n * n_codes)[: self.n * n_codes].reshape(self.n, n_codes)


def buckets(t0_ns: int, ts_ns: np.ndarray, end_ns: int | None = None) -> Buckets:
    """1 s buckets from ``t0_ns`` to the last of ``ts_ns`` (or ``end_ns``, if later); whole seconds of
    more than 1 s when that would be over :data:`MAX_BUCKETS` buckets."""
    last = int(np.max(ts_ns)) if np.size(ts_ns) else t0_ns
    if end_ns is not None:
        last = max(last, int(end_ns))
    span = max(last - t0_ns, 0)
    size = BUCKET_NS * max(1, -(-(span + 1) // (BUCKET_NS * MAX_BUCKETS)))
    return Buckets(int(t0_ns), int(size), max(1, -(-(span + 1) // size)))


def crosstab(a: np.ndarray, n_a: int, b: np.ndarray, n_b: int) -> np.ndarray:
    """``[a, b]`` counts of two integer codes (rows with a code out of range left out)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ok = (a >= 0) & (a < n_a) & (b >= 0) & (b < n_b)
    flat = a[ok] * n_b + b[ok]
    return np.bincount(flat, minlength=n_a * n_b)[: n_a * n_b].reshape(n_a, n_b)
