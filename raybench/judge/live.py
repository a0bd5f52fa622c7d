"""The live view's figures: a rolling store of the last seconds of request completions, and the
requests a scenario's arrivals should have started by a given time. Pure: no Ray, no I/O.

:class:`Rolling` keeps the rows of the last :data:`KEEP_S` seconds (by ``ts_end_ns``) as the batches
they came in, plus running totals of every row ever added. :meth:`Rolling.snapshot` answers for the
*span* ``[now - settle_s - span_s, now - settle_s)``: rows reach the aggregator up to a host flush
interval after they complete, so the last ``settle_s`` are never complete and are left out; the
span never starts before the origin (the load's t0). Over exactly the rows of the span it gives
the rate (completions per second of span), the errors, and the exact nearest-rank p50 and p99 of
latency and of dispatch lag (``raybench.judge.stats.percentile``, the method of every other figure).
Exactness costs memory in the rate: ``KEEP_S x rate`` rows of five numbers (10 s at 10,000 req/s:
3.4 MB), which is why nothing older is kept.

Adding a batch costs a few numpy calls whatever its size (totals, the newest end), no per-row
Python; the rows of the span are picked and sorted when a snapshot is asked for (every 2 s).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from raybench.judge.stats import percentile

#: Seconds of rows kept (counted back from the newest row, or now); older batches are dropped.
KEEP_S = 10.0
#: The span the live figures cover by default (s).
SPAN_S = 5.0
#: Seconds before ``now`` that the span ends (rows still on their way meanwhile).
SETTLE_S = 1.0


class _Batch(NamedTuple):
    newest: int  # the batch's latest ts_end_ns
    ts_end_ns: Any
    latency_ms: Any
    lag_ms: Any
    error: Any
    warmup: Any


class Rolling:
    """Completions of the last ``keep_s`` seconds and totals since the start.

    Args:
        origin_ns: the load's t0: the span never starts before it.
        keep_s: how much is kept (s); a span longer than ``keep_s - settle_s`` is cut to it.
    """

    def __init__(self, origin_ns: int = 0, *, keep_s: float = KEEP_S) -> None:
        self.origin_ns = origin_ns
        self.keep_ns = int(keep_s * 1e9)
        self.batches: deque[_Batch] = deque()
        self.newest = origin_ns  # the latest end time seen (ns)
        self.done = 0  # every row added (warm-up ones included)
        self.warm = 0
        self.errors = 0

    def add(self, ts_end_ns: Any, latency_ms: Any, lag_ms: Any, error: Any, warmup: Any) -> None:
        """One batch of rows, as arrays of equal length: end time (ns), latency and dispatch lag (ms),
        whether each is an error and whether it is a warm-up row. The arrays are kept as given (a
        numpy view of an Arrow column keeps that column's buffer only): don't change them after."""
        ends = np.asarray(ts_end_ns, dtype=np.int64)
        if ends.size == 0:
            return
        err, warm = np.asarray(error, dtype=bool), np.asarray(warmup, dtype=bool)
        self.done += ends.size
        self.errors += int(np.count_nonzero(err))
        self.warm += int(np.count_nonzero(warm))
        newest = int(ends.max())
        self.newest = max(self.newest, newest)
        self.batches.append(
            _Batch(newest, ends, np.asarray(latency_ms, np.float64), np.asarray(lag_ms, np.float64), err, warm)
        )
        self._drop(self.newest - self.keep_ns)

    def _drop(self, cutoff: int) -> None:
        """Forget the batches whose every row ended before ``cutoff`` (those that came in order at
        once; a straggler among newer ones at the next snapshot)."""
        while self.batches and self.batches[0].newest < cutoff:
            self.batches.popleft()

    @property
    def rows_kept(self) -> int:
        return sum(b.ts_end_ns.size for b in self.batches)

    def span(self, now_ns: int, span_s: float = SPAN_S, settle_s: float = SETTLE_S) -> tuple[int, int]:
        """``(start, end)`` (ns) of the span at ``now_ns``: ``span_s`` long (at most what is kept),
        ending ``settle_s`` before now, never starting before the origin (then shorter, or empty)."""
        end = max(self.origin_ns, now_ns - int(settle_s * 1e9))
        start = max(self.origin_ns, end - min(int(span_s * 1e9), self.keep_ns - int(settle_s * 1e9)))
        return start, end

    def snapshot(self, now_ns: int, span_s: float = SPAN_S, settle_s: float = SETTLE_S) -> dict[str, Any]:
        """The totals and the span's figures at ``now_ns`` (a dict of plain numbers; a figure without
        rows is None). Also drops what ended more than ``keep_s`` before now."""
        cutoff = max(self.newest, now_ns) - self.keep_ns
        if any(b.newest < cutoff for b in self.batches):
            self.batches = deque(b for b in self.batches if b.newest >= cutoff)
        start, end = self.span(now_ns, span_s, settle_s)
        parts = [b for b in self.batches if b.newest >= start]
        count = errors = warm = 0
        lat = lag = np.empty(0)
        if parts and end > start:
            ends = np.concatenate([b.ts_end_ns for b in parts])
            m = (ends >= start) & (ends < end)
            count = int(np.count_nonzero(m))
            lat = np.concatenate([b.latency_ms for b in parts])[m]
            lag = np.concatenate([b.lag_ms for b in parts])[m]
            errors = int(np.count_nonzero(np.concatenate([b.error for b in parts])[m]))
            warm = int(np.count_nonzero(np.concatenate([b.warmup for b in parts])[m]))
        seconds = (end - start) / 1e9
        return {
            "done": self.done,
            "warmup_done": self.warm,
            "errors": self.errors,
            "span_start_ns": start,
            "span_end_ns": end,
            "span_s": seconds,
            "count": count,
            "span_errors": errors,
            "span_warmup": warm,
            "rate": count / seconds if seconds > 0 else None,
            "p50_ms": _figure(percentile(lat, 50.0)),
            "p99_ms": _figure(percentile(lat, 99.0)),
            "lag_p99_ms": _figure(percentile(lag, 99.0)),
            "lag_max_ms": _figure(float(lag.max()) if lag.size else math.nan),
            "rows_kept": self.rows_kept,
        }


def _figure(x: float) -> float | None:
    return None if math.isnan(x) else x


class ExpectedArrivals:
    """How many requests an open-loop scenario's arrivals start in ``[0, t)`` of the load, on
    average: the integral of every agent's rate x shape, with the midpoint rule of
    ``Arrivals.expected_count`` (2,000 steps over the run), so the total at the run's end is
    ``Scenario.offered_rate x duration``.

    Args:
        arrivals: the scenario's ``arrivals`` (``rate``, ``shape.factor(t, tz)``).
        regions: ``(weight, utc_offset_h)`` of each region.
        agents, duration_s: the run's.
    """

    STEPS = 2000

    def __init__(self, arrivals: Any, regions: Sequence[tuple[float, float]], agents: int, duration_s: float) -> None:
        self.duration_s = duration_s
        dt = duration_s / self.STEPS if duration_s > 0 else 0.0
        per_step = np.zeros(self.STEPS)
        for weight, tz in regions:
            factors = np.array([arrivals.shape.factor((i + 0.5) * dt, tz) for i in range(self.STEPS)], np.float64)
            per_step += weight * factors * dt * arrivals.rate
        self.edges = np.linspace(0.0, duration_s, self.STEPS + 1)
        self.cumulative = np.concatenate([[0.0], np.cumsum(per_step * agents)])

    @property
    def total(self) -> float:
        return float(self.cumulative[-1])

    def by(self, t_s: float) -> float:
        """Expected arrivals in ``[0, t_s)`` (linear within a step; the total after the run)."""
        if t_s <= 0 or self.duration_s <= 0:
            return 0.0
        return float(np.interp(min(t_s, self.duration_s), self.edges, self.cumulative))
