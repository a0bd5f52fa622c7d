"""windows.py and summary.py on hand-made request tables with known answers."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from raybench.judge import summary
from raybench.results import schema, windows

T0 = 1_000_000_000_000


def _table(rows: list[dict]) -> pa.Table:
    full = []
    for i, r in enumerate(rows):
        base = dict.fromkeys(schema.column_names("requests"))
        base.update(
            run_id="r", request_id=i, agent_id=i % 7, host_id=0, node_id="n1", region="eu", cls="safe",
            warmup=False, ts_intended_ns=T0, ts_start_ns=T0, latency_ms=10.0, service_ms=10.0, lag_ms=0.0,
            outcome="ok", escalated=False, cache_hit=False, conflicts=0,
        )  # fmt: skip
        base.update(r)
        base["ts_end_ns"] = base.get("ts_end_ns") or T0 + int(base["latency_ms"] * 1e6)
        full.append(base)
    return pa.Table.from_pylist(full, schema=schema.schema("requests", final=False))


def test_windows_count_exact_percentiles_and_leave_out_warmup():
    rows = [{"latency_ms": float(v), "ts_end_ns": T0 + 500_000_000} for v in range(1, 101)]
    rows += [{"latency_ms": 5000.0, "ts_end_ns": T0 + 1_500_000_000, "warmup": True}]
    rows += [{"latency_ms": 7.0, "ts_end_ns": T0 + 1_200_000_000, "outcome": "error", "cls": "risky"}]
    out = windows.compute(_table(rows), "r", T0, 1.0, 2)
    w0 = next(r for r in out if r["scope"] == "all" and r["window_start_ns"] == T0)
    assert w0["count"] == 100 and w0["p50_ms"] == 50.0 and w0["p99_ms"] == 99.0 and w0["max_ms"] == 100.0
    assert w0["throughput"] == 100.0 and w0["error_rate"] == 0.0
    w1 = next(r for r in out if r["scope"] == "all" and r["window_start_ns"] == T0 + 10**9)
    assert w1["count"] == 1 and w1["error_rate"] == 1.0 and w1["max_ms"] == 7.0  # the warm-up row is not there
    assert any(r["scope"] == "cls=risky" for r in out) and any(r["scope"] == "region=eu" for r in out)


def test_summary_rates_timing_error_and_coordination():
    rows = [
        {"latency_ms": 20.0, "policy_ms": 10.5, "policy_model_ms": 10.0, "lease_wait_ms": 1.0, "state_ms": 2.0,
         "event_ms": 0.0},
        {"latency_ms": 40.0, "policy_ms": 11.0, "policy_model_ms": 10.0, "escalated": True, "outcome": "timeout"},
        {"latency_ms": 30.0, "outcome": "denied", "cls": "risky", "conflicts": 3},
        {"latency_ms": 999.0, "warmup": True},
    ]  # fmt: skip
    rows_out = summary.summarize(_table(rows), span_s=3.0)
    overall = rows_out[0]
    assert overall["scope"] == "all" and overall["count"] == 3
    assert overall["throughput"] == pytest.approx(1.0)
    assert overall["error_rate"] == pytest.approx(1 / 3)  # timeout counts, denied does not
    assert overall["denied_rate"] == pytest.approx(1 / 3)
    assert overall["escalation_rate"] == pytest.approx(1 / 3)
    assert overall["conflicts"] == 3
    assert overall["timing_err_p50_ms"] == pytest.approx(0.5) and overall["timing_err_p99_ms"] == pytest.approx(1.0)
    assert overall["coord_p99_ms"] == pytest.approx(3.0)
    assert overall["max_ms"] == 40.0
    assert [r["scope"] for r in rows_out] == ["all", "cls=safe", "cls=risky"]
    lines = summary.format_summary(rows_out)
    assert lines[0].startswith("scope") and len(lines) == 4


def test_resource_growth_first_vs_last_quarter():
    ts = list(range(8))
    rss = [100, 100, 110, 120, 130, 140, 150, 150]
    t = pa.Table.from_pylist(
        [{"run_id": "r", "ts_ns": x, "node_id": "n", "role": "host", "pid": 1, "cpu_percent": 10.0,
          "rss_bytes": v * 2**20, "threads": 1, "open_fds": 1, "gc_gen0": 0, "gc_gen1": 0, "gc_gen2": 0}
         for x, v in zip(ts, rss, strict=True)],
        schema=schema.schema("resources", final=False),
    )  # fmt: skip
    (row,) = summary.resource_growth(t)
    assert row["role"] == "host" and row["processes"] == 1
    assert row["rss_growth"] == pytest.approx(150 / 100 - 1)
    assert row["peak_rss_mib"] == 150
    assert not math.isnan(row["cpu_mean"])


def test_windows_follow_their_definition_drain_in_no_window_and_rates_over_measured_time():
    # 3 s load, 1 s warm-up, 2 s windows: window 0 = [0, 2) holds 1 s of measured time, window 1
    # = [2, 3) ends at the load's end; completions after it (the drain) are in no window.
    s = 10**9
    rows = [{"ts_end_ns": T0 + int(1.5 * s), "ts_intended_ns": T0 + int(1.2 * s)} for _ in range(10)]
    rows += [{"ts_end_ns": T0 + int(2.5 * s), "ts_intended_ns": T0 + int(2.4 * s)} for _ in range(4)]
    rows += [{"ts_end_ns": T0 + int(3.2 * s), "ts_intended_ns": T0 + int(2.9 * s)} for _ in range(3)]  # drain
    rows += [{"ts_end_ns": T0 + int(0.5 * s), "warmup": True}]
    out = [
        r
        for r in windows.compute(_table(rows), "r", T0, 2.0, 2, warmup_s=1.0, end_ns=T0 + 3 * s)
        if r["scope"] == "all"
    ]
    assert [(r["window_start_ns"] - T0, r["window_end_ns"] - T0) for r in out] == [(0, 2 * s), (2 * s, 3 * s)]
    assert [r["count"] for r in out] == [10, 4]  # the drain's 3 are in no window
    assert [r["throughput"] for r in out] == [10 / 1.0, 4 / 1.0]  # 1 s measured in each, not 2 s
    # Without the load's end every row is in its window by definition (the drain in window 1).
    whole = [r for r in windows.compute(_table(rows), "r", T0, 2.0, 2) if r["scope"] == "all"]
    assert [r["count"] for r in whole] == [10, 7]


def test_windows_wholly_in_the_warmup_are_left_out():
    s = 10**9
    rows = [{"ts_end_ns": T0 + int(2.5 * s), "ts_intended_ns": T0 + int(2.4 * s)}]
    out = [r for r in windows.compute(_table(rows), "r", T0, 1.0, 3, warmup_s=2.0) if r["scope"] == "all"]
    assert [r["window_start_ns"] - T0 for r in out] == [2 * s]


def test_summary_throughput_counts_completions_before_the_load_end():
    s = 10**9
    rows = [{"ts_end_ns": T0 + s}, {"ts_end_ns": T0 + 2 * s}, {"ts_end_ns": T0 + 5 * s}]
    all_rows = summary.summarize(_table(rows), 2.0)[0]
    clipped = summary.summarize(_table(rows), 2.0, end_ns=T0 + 3 * s)[0]
    assert all_rows["count"] == clipped["count"] == 3  # latency figures: every measured request
    assert all_rows["throughput"] == 1.5 and clipped["throughput"] == 1.0  # the rate: what ended in the span
