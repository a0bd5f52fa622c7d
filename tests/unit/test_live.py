"""The live view's rolling store and expected arrivals (raybench.judge.live), on rows we control: the
span's figures are numpy's over exactly the rows of the span, nothing older is kept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raybench.config import scenario
from raybench.judge.live import ExpectedArrivals, Rolling

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def _rows(rng: np.random.Generator, n: int, lo_s: float, hi_s: float) -> dict[str, np.ndarray]:
    return {
        "ts_end_ns": T0 + (rng.uniform(lo_s, hi_s, n) * S).astype(np.int64),
        "latency_ms": rng.lognormal(3.0, 0.8, n),
        "lag_ms": rng.exponential(0.5, n),
        "error": rng.random(n) < 0.03,
        "warmup": rng.random(n) < 0.2,
    }


def _feed(store: Rolling, rows: dict[str, np.ndarray], batches: int, rng: np.random.Generator) -> None:
    """The rows in ``batches`` batches of random membership (batches span several buckets)."""
    order = rng.permutation(rows["ts_end_ns"].size)
    for part in np.array_split(order, batches):
        store.add(*(rows[k][part] for k in ("ts_end_ns", "latency_ms", "lag_ms", "error", "warmup")))


def _in_span(rows: dict[str, np.ndarray], start: int, end: int) -> dict[str, np.ndarray]:
    m = (rows["ts_end_ns"] >= start) & (rows["ts_end_ns"] < end)
    return {k: v[m] for k, v in rows.items()}


def _exact(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q, method="inverted_cdf"))


def test_the_span_figures_are_numpys_over_exactly_the_rows_of_the_span():
    rng = np.random.default_rng(7)
    rows = _rows(rng, 20_000, 0.0, 12.4)
    store = Rolling(T0)
    _feed(store, rows, 40, rng)
    now = T0 + int(12.3 * S)
    snap = store.snapshot(now, span_s=5.0, settle_s=1.0)

    # the span: the 5 s that ended 1 s before now
    start, end = T0 + int(6.3 * S), T0 + int(11.3 * S)
    assert (snap["span_start_ns"], snap["span_end_ns"]) == (start, end)
    inside = _in_span(rows, start, end)
    assert inside["ts_end_ns"].min() - start < S // 100 and end - inside["ts_end_ns"].max() < S // 100
    n = inside["ts_end_ns"].size
    assert 7_000 < n < 9_000 and snap["count"] == n and snap["span_s"] == 5.0
    assert snap["rate"] == n / 5.0
    assert snap["span_errors"] == int(inside["error"].sum()) and snap["span_warmup"] == int(inside["warmup"].sum())
    assert snap["p50_ms"] == _exact(inside["latency_ms"], 50) and snap["p99_ms"] == _exact(inside["latency_ms"], 99)
    assert snap["lag_p99_ms"] == _exact(inside["lag_ms"], 99) and snap["lag_max_ms"] == float(inside["lag_ms"].max())
    # the totals: every row ever added
    assert snap["done"] == 20_000 and snap["errors"] == int(rows["error"].sum())
    assert snap["warmup_done"] == int(rows["warmup"].sum())


def test_rows_outside_the_span_are_left_out():
    store = Rolling(T0)
    ones = np.ones(100)

    def add(at_s: float, latency: float, n: int = 100) -> None:
        store.add(np.full(n, T0 + int(at_s * S)), ones[:n] * latency, ones[:n], np.zeros(n, bool), np.zeros(n, bool))

    add(1.0, 10_000.0)  # long before the span
    add(6.29, 7_000.0)  # just before it
    add(6.3, 10.0)  # its first nanosecond
    add(11.29, 20.0, 50)  # its end
    add(11.3, 5_000.0)  # after it: not settled yet at now = 12.3 s
    snap = store.snapshot(T0 + int(12.3 * S), span_s=5.0, settle_s=1.0)
    assert snap["count"] == 150 and snap["rate"] == 30.0
    assert snap["p50_ms"] == 10.0 and snap["p99_ms"] == 20.0 and snap["done"] == 450


def test_old_rows_are_dropped_memory_stays_bounded_totals_go_on():
    rng = np.random.default_rng(3)
    store = Rolling(T0, keep_s=10.0)
    for step in range(240):  # 120 s of 0.5 s flushes, 200 rows each
        rows = _rows(rng, 200, step * 0.5, step * 0.5 + 0.5)
        store.add(*(rows[k] for k in ("ts_end_ns", "latency_ms", "lag_ms", "error", "warmup")))
        assert len(store.batches) <= 21 and store.rows_kept <= 21 * 200
    assert min(b.ts_end_ns.min() for b in store.batches) >= T0 + 109 * S and store.done == 240 * 200
    # a snapshot long after the last row drops the rest: nothing is that recent
    snap = store.snapshot(T0 + 200 * S)
    assert not store.batches and snap["count"] == 0 and snap["p99_ms"] is None and snap["done"] == 48_000


def test_a_straggler_is_dropped_at_the_next_snapshot():
    store = Rolling(T0)
    for at in (30, 2, 31):  # the second batch ends 28 s before the first: kept only until a snapshot
        store.add(np.array([T0 + at * S]), np.array([1.0]), np.zeros(1), np.array([at == 2]), np.zeros(1, bool))
    assert store.done == 3 and store.errors == 1 and len(store.batches) == 3
    store.snapshot(T0 + 31 * S)
    assert [int(b.newest) for b in store.batches] == [T0 + 30 * S, T0 + 31 * S]


def test_the_span_never_starts_before_the_load():
    rng = np.random.default_rng(11)
    rows = _rows(rng, 1_000, 0.0, 3.2)
    store = Rolling(T0)
    _feed(store, rows, 5, rng)
    snap = store.snapshot(T0 + int(3.2 * S), span_s=5.0, settle_s=1.0)
    assert (snap["span_start_ns"], snap["span_end_ns"]) == (T0, T0 + int(2.2 * S))
    n = _in_span(rows, T0, T0 + int(2.2 * S))["ts_end_ns"].size
    assert snap["count"] == n and snap["rate"] == n / 2.2
    # before anything settled: an empty span, no figures
    early = store.snapshot(T0 + int(0.9 * S))
    assert early["span_s"] == 0.0 and early["rate"] is None and early["p50_ms"] is None and early["done"] == 1_000


def test_expected_arrivals_add_up_to_the_offered_load():
    sc = scenario.load(None, "smoke", {"run.agents": 1_000, "arrivals.rate": 0.2, "run.duration": "20s"})
    exp = ExpectedArrivals(sc.arrivals, [(r.weight, r.utc_offset) for r in sc.regions], 1_000, 20.0)
    assert exp.total == pytest.approx(sc.offered_rate * 20.0, rel=1e-9) and exp.total == pytest.approx(4_000)
    assert exp.by(0.0) == 0.0 and exp.by(5.0) == pytest.approx(1_000) and exp.by(60.0) == exp.total
    ramp = scenario.load(None, "smoke", {"arrivals.shape": {"kind": "ramp", "ramp_time": "10s"}})
    exp = ExpectedArrivals(ramp.arrivals, [(r.weight, r.utc_offset) for r in ramp.regions], 1_000, 20.0)
    assert exp.total == pytest.approx(ramp.offered_rate * 20.0, rel=1e-9)
    for t in (2.0, 5.0, 10.0, 15.0):  # the integral of the shape so far
        per_agent = sum(r.weight * ramp.arrivals.expected_count(t, [r.utc_offset]) for r in ramp.regions)
        assert exp.by(t) == pytest.approx(1_000 * per_agent, rel=1e-3), t
    assert all(math.isfinite(exp.by(t)) for t in (0.1, 19.9))
