"""Threshold evaluation, windows and the SLA monitor: known values and hypothesis properties."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import synth_requests as synth
from hypothesis import given, settings
from hypothesis import strategies as st
from synth_requests import MS, T0_NS, S

from raybench.config.sla import parse_sla_config
from raybench.config.sources import load_raw
from raybench.errors import ScenarioError
from raybench.judge import stats
from raybench.judge.grammar import parse_threshold, parse_thresholds
from raybench.judge.sla import SlaMonitor
from raybench.judge.sla_replay import evaluate_run, split_windows
from raybench.results import store

#: The lighthouse preset's thresholds, as the preset file writes them.
LIGHTHOUSE_THRESHOLDS = tuple(load_raw(preset="lighthouse")["sla"]["thresholds"])
ONE_TO_100 = [float(i) for i in range(1, 101)]


def ev(expr, table, **kw):
    return parse_threshold(expr).evaluate(table, **kw)


# -- known values ----------------------------------------------------------------------------


def test_latency_metrics_known_values():
    t = synth.requests(ONE_TO_100)
    assert ev("p99<99ms", t).observed == 99.0
    assert ev("p99<99ms", t).passed is False
    assert ev("p99<=99ms", t).passed is True
    assert ev("p50<=50ms", t).observed == 50.0
    assert ev("p99.9<1s", t).observed == 100.0
    assert ev("p1<1s", t).observed == 1.0
    obs = ev("mean<60ms", t)
    assert (obs.observed, obs.passed, obs.count) == (50.5, True, 100)
    assert ev("max<100ms", t).passed is False and ev("max<=100ms", t).passed is True
    assert ev("min>1ms", t).passed is False and ev("min>=1ms", t).passed is True


def test_warmup_rows_are_left_out():
    t = synth.requests([*ONE_TO_100, 9999.0], warmup=[False] * 100 + [True], outcome=["ok"] * 100 + ["error"])
    assert ev("max<200ms", t).observed == 100.0
    assert ev("error_rate<0.1%", t).observed == 0.0
    assert ev("mean<1s", t).count == 100


def test_error_rate_counts_error_and_timeout_not_denied():
    outcomes = ["ok"] * 994 + ["error", "timeout", "denied", "denied", "denied", "denied"]
    t = synth.requests([1.0] * 1000, outcome=outcomes)
    obs = ev("error_rate<0.1%", t)
    assert obs.observed == pytest.approx(0.002) and obs.passed is False and obs.count == 1000
    assert ev("error_rate<0.3%", t).passed is True


def test_share_known_values():
    t = synth.requests(ONE_TO_100)
    assert ev("share(latency<100ms)>=99%", t).observed == pytest.approx(0.99)
    assert ev("share(latency<100ms)>=99%", t).passed is True
    assert ev("share(latency<99ms)>=99%", t).passed is False
    assert ev("share(latency<=50ms)>=50%", t).observed == pytest.approx(0.5)


def test_scopes_filter_rows():
    lat = [10.0, 20.0, 30.0, 1000.0, 2000.0]
    t = synth.requests(
        lat,
        escalated=[False, False, False, True, True],
        cls=["safe", "safe", "risky", "complex", "risky"],
        node=["a", "b", "a", "b", "a"],
        region=["eu", "us", "eu", "us", "eu"],
    )
    assert ev("max{escalated=false}<1s", t).observed == 30.0
    assert ev("mean{escalated=true}<1s", t).observed == 1500.0
    assert ev("max{cls=risky}<1s", t).observed == 2000.0
    assert ev("max{cls=risky,escalated=false}<1s", t).observed == 30.0
    assert ev("mean{node=b}<1s", t).observed == 510.0
    assert ev("mean{region=eu}<1s", t).observed == 680.0
    assert ev("p50{region=eu,node=a,escalated=true}<1s", t).observed == 2000.0


def test_stage_scope_reads_the_stage_column_and_skips_nulls():
    t = synth.requests([500.0] * 4, stages={"fuse": [1.0, None, 3.0, 9.0], "llm": [None] * 4})
    obs = ev("p99{stage=fuse}<5ms", t)
    assert (obs.observed, obs.passed, obs.count) == (9.0, False, 3)
    assert ev("mean{stage=fuse}<5ms", t).observed == pytest.approx(13.0 / 3)
    llm = ev("p99{stage=llm}<5ms", t)
    assert llm.passed is None and llm.observed is None and llm.count == 0


def test_no_data_is_never_a_silent_pass():
    t = synth.requests([1.0, 2.0], cls="safe")
    for expr in (
        "p99{cls=risky}<1s",
        "mean{cls=risky}<1s",
        "error_rate{cls=risky}<1%",
        "share(latency<1s){cls=risky}>=1%",
    ):
        obs = ev(expr, t)
        assert obs.passed is None and obs.count == 0 and obs.note
    assert ev("growth(rss)<10%", t).passed is None
    assert ev("throughput>=95%", synth.requests([])).passed is None


def test_dictionary_encoded_files_give_the_same_answers(tmp_path):
    t = synth.requests([1.0, 5.0, 50.0, 70.0], cls=["risky", "safe", "risky", "safe"], node=["x", "y", "y", "x"])
    store.write_table(tmp_path, "requests", t)
    back = store.read_table(tmp_path, "requests")
    assert pa.types.is_dictionary(back.schema.field("cls").type)
    for expr in ("mean{cls=risky}<1s", "max{node=x}<1s", "error_rate{cls=safe}<1%", "p50{node=y,cls=safe}<1s"):
        assert ev(expr, back) == ev(expr, t)


def test_absolute_throughput_and_warmup_overlap():
    ends = [T0_NS + i * 10 * MS for i in range(100)]  # 100 requests in the first second
    t = synth.requests([5.0] * 100, ends_ns=ends)
    obs = ev("throughput>=100/s", t, span_ns=(T0_NS, T0_NS + S))
    assert (obs.observed, obs.passed, obs.count) == (100.0, True, 100)
    assert ev("throughput>=101/s", t, span_ns=(T0_NS, T0_NS + S)).passed is False
    assert ev("throughput>=100/s", t, span_ns=(T0_NS, T0_NS + 2 * S)).observed == 50.0
    assert ev("throughput>=100/s", t, span_s=0.5).observed == 200.0
    # A warm-up request intended in the span: the span overlaps the warm-up, not judged.
    warm = synth.requests([5.0] * 100, ends_ns=ends, warmup=[True] + [False] * 99)
    obs = ev("throughput>=1/s", warm, span_ns=(T0_NS - 5 * MS, T0_NS + S))
    assert obs.passed is None and obs.count == 99 and "warm-up" in obs.note
    # One intended before the span that only ends in it leaves the span measured (not counted).
    obs = ev("throughput>=1/s", warm, span_ns=(T0_NS, T0_NS + S))
    assert obs.passed is True and obs.count == 99
    with pytest.raises(ValueError, match="span"):
        ev("throughput>=1/s", t)


def test_relative_throughput_counts_intended_in_span():
    # 10 requests intended in [0, 1s); the last ends after 1 s; one more intended earlier ends inside
    intended = [T0_NS + i * 100 * MS for i in range(10)] + [T0_NS - 500 * MS]
    ends = [x + 50 * MS for x in intended[:9]] + [T0_NS + 1200 * MS, T0_NS + 10 * MS]
    t = synth.requests([1.0] * 11, ends_ns=ends, intended_ns=intended)
    obs = ev("throughput>=95%", t, span_ns=(T0_NS, T0_NS + S))
    assert obs.observed == pytest.approx(10 / 10) and obs.passed is True
    ends[10] = T0_NS - 1  # now it ends before the span
    t = synth.requests([1.0] * 11, ends_ns=ends, intended_ns=intended)
    obs = ev("throughput>=95%", t, span_ns=(T0_NS, T0_NS + S))
    assert obs.observed == pytest.approx(9 / 10) and obs.passed is False
    assert ev("throughput>=95%", t, span_ns=(T0_NS, T0_NS + S), offered=9).observed == 1.0


def test_growth_rss_per_process_max():
    s = [
        # process (a, 1): 100, 100, 110, 120 at 0..3 s -> first quarter 100, last 120: +20 %
        *[("a", 1, T0_NS + i * S, v) for i, v in enumerate([100, 100, 110, 120])],
        # process (b, 1) (same pid, other node): flat
        *[("b", 1, T0_NS + i * S, 500) for i in range(8)],
        # process (a, 2): only three samples -> left out, however much it grows
        *[("a", 2, T0_NS + i * S, v) for i, v in enumerate([1, 100, 1000])],
        # process (a, 3): 8 samples 0..7 s: first quarter (<=1.75 s) 200, 200; last (>=5.25 s) 210, 230
        *[("a", 3, T0_NS + i * S, v) for i, v in enumerate([200, 200, 0, 0, 0, 0, 210, 230])],
    ]
    res = synth.resources(s)
    t = synth.requests([1.0])
    obs = ev("growth(rss)<10%", t, resources=res)
    assert obs.observed == pytest.approx(0.2) and obs.passed is False and obs.count == 3
    assert ev("growth(rss){node=b}<10%", t, resources=res).observed == 0.0
    assert ev("growth(rss){node=a}<25%", t, resources=res).passed is True
    assert ev("growth(rss){role=shard}<10%", t, resources=res).passed is None
    only3 = synth.resources(s[12:15])
    assert ev("growth(rss)<10%", t, resources=only3).passed is None
    single = synth.resources(s[15:])
    assert ev("growth(rss)<10%", t, resources=single).observed == pytest.approx(0.1)
    # quarter bounds are inclusive: samples at 0..4 s -> first quarter 0 and 1 s, last 3 and 4 s
    edge = synth.resources([("c", 9, T0_NS + i * S, v) for i, v in enumerate([100, 200, 999, 300, 500])])
    assert ev("growth(rss)<10%", t, resources=edge).observed == pytest.approx(400 / 150 - 1)


# -- properties --------------------------------------------------------------------------------

_lat = st.floats(min_value=0.001, max_value=10_000.0, allow_nan=False)
_samples = st.lists(_lat, min_size=1, max_size=60)
_q = st.sampled_from([1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0])


@settings(deadline=None)  # timing is not what is tested here
@given(_samples, _q, _q)
def test_percentile_is_monotone_in_q(values, q1, q2):
    lo, hi = sorted((q1, q2))
    t = synth.requests(values)
    a = ev(f"p{lo:g}<1s", t).observed
    b = ev(f"p{hi:g}<1s", t).observed
    assert a <= b
    assert a in values and b in values  # nearest rank: a measured value


@settings(deadline=None)  # timing is not what is tested here
@given(_samples, _q, st.one_of(_lat, st.integers(0, 59)))
def test_share_and_percentile_agree_nearest_rank(values, q, x):
    if isinstance(x, int):
        x = values[x % len(values)]  # hit exact sample values (the boundary) often
    x = round(x, 3)  # the parser keeps whole microseconds of a ms-given limit
    t = synth.requests(values)
    share_ok = ev(f"share(latency<={x!r}ms)>={q:g}%", t).passed
    pct_ok = ev(f"p{q:g}<={x!r}ms", t).passed
    assert share_ok == pct_ok
    assert pct_ok == (stats.percentile(values, q) <= x)


_EXPRS = [
    "p{q}<={x}ms",
    "p{q}<{x}ms",
    "p{q}>{x}ms",
    "share(latency<={x}ms)>={q}%",
    "mean<{x}ms",
    "max<{x}ms",
    "min>{x}ms",
    "error_rate<{r}%",
]


@settings(max_examples=150, deadline=None)  # timing is not what is tested here
@given(
    _samples,
    _samples,
    st.sampled_from(_EXPRS),
    _q,
    st.floats(0.01, 10_000.0).map(lambda v: round(v, 3)),
    st.lists(st.booleans(), min_size=120, max_size=120),
    st.sampled_from([0.5, 5.0, 20.0, 50.0]),
)
def test_union_verdict_implied_by_subsets(a, b, template, q, x, errs, r):
    """When a threshold passes (fails) on both of two sample sets it passes (fails) on their union.

    True for every threshold here: each verdict is "a share (or mean) of the samples compared with
    a bound", and the union's share is a weighted average of the two subsets' shares.
    """
    expr = template.format(q=f"{q:g}", x=x, r=r)
    ta = synth.requests(a, outcome=["error" if e else "ok" for e in errs[: len(a)]])
    tb = synth.requests(b, outcome=["timeout" if e else "ok" for e in errs[60 : 60 + len(b)]])
    pa_, pb = ev(expr, ta).passed, ev(expr, tb).passed
    union = ev(expr, pa.concat_tables([ta, tb])).passed
    if pa_ is not None and pa_ == pb:
        assert union == pa_, (expr, pa_, pb, union)


@settings(deadline=None)  # timing is not what is tested here
@given(st.lists(st.integers(-2 * S, 20 * S), max_size=80), st.sampled_from([0.25, 1.0, 3.0]))
def test_split_windows_puts_each_row_in_exactly_its_window(offsets, window_s):
    t = synth.requests([1.0] * len(offsets), ends_ns=[T0_NS + o for o in offsets])
    windows = split_windows(t, T0_NS, window_s)
    w_ns = round(window_s * S)
    assert [w.k for w in windows] == list(range(len(windows)))
    assert sum(w.requests.num_rows for w in windows) == sum(1 for o in offsets if o >= 0)
    for w in windows:
        assert (w.start_ns, w.end_ns) == (T0_NS + w.k * w_ns, T0_NS + (w.k + 1) * w_ns)
        for e in w.requests.column("ts_end_ns").to_pylist():
            assert w.start_ns <= e < w.end_ns
    if windows:
        assert windows[-1].requests.num_rows > 0


def test_split_windows_known_and_end_clip():
    ends = [T0_NS + x for x in (500 * MS, 1500 * MS, 1700 * MS, 3200 * MS, -1)]
    t = synth.requests([1.0] * 5, ends_ns=ends)
    ws = split_windows(t, T0_NS, 1.0)
    assert [w.requests.num_rows for w in ws] == [1, 2, 0, 1]
    clipped = split_windows(t, T0_NS, 1.0, end_ns=T0_NS + 2500 * MS)
    assert [(w.requests.num_rows, w.end_ns - w.start_ns) for w in clipped] == [(1, S), (2, S), (0, S // 2)]
    assert split_windows(synth.requests([]), T0_NS, 1.0) == []


# -- the monitor -----------------------------------------------------------------------------


def _windowed(pattern, *, per_window=20, fast=5.0, slow=500.0, window_s=1.0):
    """A run whose window k is slow where pattern[k] == 'F', fast where 'P', empty where '-'."""
    lat, ends = [], []
    w_ns = round(window_s * S)
    for k, c in enumerate(pattern):
        if c == "-":
            continue
        for i in range(per_window):
            lat.append(slow if c == "F" else fast)
            ends.append(T0_NS + k * w_ns + (i + 1) * (w_ns // (per_window + 1)))
    return synth.requests(lat, ends_ns=ends)


def _feed(mon, table, window_s=1.0):
    out = []
    for w in split_windows(table, T0_NS, window_s):
        out.append([v.k for v in mon.observe_window(w.k, w.start_ns, w.end_ns, w.requests, None)])
    return out


def test_grace_consecutive_vs_cumulative():
    t = _windowed("FFPFFFF")
    ths = parse_thresholds(["max<100ms"])
    cons = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, grace_windows=3, counting="consecutive")
    assert _feed(cons, t) == [[], [], [], [], [], [5], []]  # declared once, on the 3rd in a row
    cumu = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, grace_windows=3, counting="cumulative")
    assert _feed(cumu, t) == [[], [], [], [3], [], [], []]
    rows = cons.finalize(t)
    assert rows[0]["windows_failed"] == 6 and rows[0]["windows_total"] == 7
    assert rows[0]["first_violation_ns"] == T0_NS + 6 * S and rows[0]["passed"] is False


def test_grace_of_one_and_no_data_windows_do_not_break_a_streak():
    ths = parse_thresholds(["max{cls=safe}<100ms"])
    t = _windowed("F-F")
    mon = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, grace_windows=2)
    assert _feed(mon, t) == [[], [], [2]]
    assert mon.last_observations[ths[0].id].passed is False
    one = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0)
    assert _feed(one, _windowed("PF")) == [[], [1]]


def test_initial_delay_skips_early_windows():
    ths = parse_thresholds(["max<100ms"])
    mon = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, initial_delay_s=2.0, grace_windows=2)
    assert _feed(mon, _windowed("FFFPFF")) == [[], [], [], [], [], [5]]
    assert mon.finalize(_windowed("FFFPFF"))[0]["windows_total"] == 4


def test_violation_carries_actions_and_details():
    ths = parse_thresholds(["max<100ms", "mean<1s"])
    mon = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, actions={"max<100ms": ["alert", "abort"]}, run_id="r1")
    w = split_windows(_windowed("F"), T0_NS, 1.0)[0]
    (v,) = mon.observe_window(0, w.start_ns, w.end_ns, w.requests)
    assert v.actions == ("alert", "abort") and v.threshold_id == "max<100ms"
    d = v.to_detail()
    assert d["observed"] == 500.0 and d["target"] == 100.0 and d["run_id"] == "r1" and d["window"] == 0
    assert d["declared_ns"] == T0_NS + S and "max<100ms" in v.summary()
    with pytest.raises(ValueError, match="in order"):
        mon.observe_window(0, w.start_ns, w.end_ns, w.requests)


def test_monitor_asserts_its_settings():
    """The settings are validated by the [sla] table's model; the monitor only asserts them."""
    ths = parse_thresholds(["max<100ms"])
    for kw in ({"grace_windows": 0}, {"counting": "sometimes"}, {"window_s": 0}, {"actions": ["page"]}):
        args = {"t0_ns": T0_NS, "window_s": 1.0} | kw
        with pytest.raises((AssertionError, ValueError)):
            SlaMonitor(ths, **args)


def _degraded_run():
    """20 s at 100 req/s, 5-11 ms; from 8 s to 12 s: 300 ms, 5 % errors, a third time out after 5 s."""
    lat, ends, intended, outcome, cls, esc = [], [], [], [], [], []
    for i in range(2000):
        t_int = T0_NS + i * 10 * MS
        bad = 8 * S <= t_int - T0_NS < 12 * S
        timeout = bad and i % 3 == 0
        latency = 5000.0 if timeout else 300.0 if bad else 5.0 + (i % 7)
        lat.append(latency)
        intended.append(t_int)
        ends.append(t_int + round(latency * MS))
        outcome.append("timeout" if timeout else "error" if bad and i % 20 == 1 else "ok")
        cls.append("risky" if i % 4 == 0 else "safe")
        esc.append(i % 10 == 0)
    return synth.requests(lat, ends_ns=ends, intended_ns=intended, outcome=outcome, cls=cls, escalated=esc)


REPLAY_THRESHOLDS = [
    "p99<100ms",
    "p50{escalated=false}<50ms",
    "mean{cls=risky}<60ms",
    "error_rate<1%",
    "throughput>=95%",
    "throughput{cls=risky}>=95%",
    "throughput>=90/s",
    "share(latency<100ms){escalated=false}>=99%",
]


def test_live_replay_matches_offline_and_direct_evaluation():
    """Feed a run window by window as the driver would, and compare with the offline verdicts.

    Three routes must agree: (1) SlaMonitor fed by hand-cut windows (each window's rows arriving in
    two batches concatenated, as the driver collects them), (2) evaluate_run (what ``raybench sla``
    does), (3) an independent count: each threshold judged directly on the full table per window.
    """
    t = _degraded_run()
    ths = parse_thresholds(REPLAY_THRESHOLDS)
    # settle 3 windows: a request intended in window k ends at most 5 s (the timeout) later
    settings_ = {"window_s": 2.0, "grace_windows": 2, "counting": "consecutive", "settle_windows": 3}
    mon = SlaMonitor(ths, t0_ns=T0_NS, **settings_)
    live = []
    ts = t.column("ts_end_ns")
    for k in range(10):
        lo, hi = T0_NS + k * 2 * S, T0_NS + (k + 1) * 2 * S
        mid = lo + S
        parts = [t.filter(pc.and_(pc.greater_equal(ts, a), pc.less(ts, b))) for a, b in ((lo, mid), (mid, hi))]
        live += mon.observe_window(k, lo, hi, pa.concat_tables(parts))
    live_rows = mon.finalize(t)
    live += mon.late_violations
    off_rows, off_v = evaluate_run(ths, t, None, t0_ns=T0_NS, **settings_)
    assert off_rows == live_rows
    assert [(v.threshold_id, v.k, v.declared_ns) for v in off_v] == [(v.threshold_id, v.k, v.declared_ns) for v in live]
    # (3) independent: judge each window directly on the full table, apply the grace rule by hand
    for th, row in zip(ths, off_rows, strict=True):
        verdicts = []
        for k in range(10):
            lo, hi = T0_NS + k * 2 * S, T0_NS + (k + 1) * 2 * S
            rows = t.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
            if th.metric == "throughput":
                rows = t  # throughput selects by span itself (ended in / intended in)
            verdicts.append(th.evaluate(rows, span_ns=(lo, hi)).passed)
        judged = [v for v in verdicts if v is not None]
        assert row["windows_total"] == len(judged), th.id
        assert row["windows_failed"] == judged.count(False), th.id
        streak, first = 0, None
        for k, v in enumerate(verdicts):
            streak = 0 if v else streak + (v is False)
            if first is None and streak >= 2:
                first = k
        assert (first is not None) == row["violated"], th.id
    # the degradation (8-12 s) fails windows 4 and 5: every threshold is violated at the end of
    # window 5 (12 s, grace 2), relative throughput 3 settle windows later (18 s); none before
    declared = {v.threshold_id: (v.k, (v.declared_ns - T0_NS) / S) for v in off_v}
    assert len(declared) == len(ths)
    for tid, when in declared.items():
        assert when == ((5, 18.0) if tid.startswith("throughput") and "%" in tid else (5, 12.0)), tid


def test_finalize_whole_run_rows():
    t = _windowed("PPPPFPPPPP", per_window=10)
    ths = parse_thresholds(["p50<100ms", "max<100ms", "throughput>=9/s", "mean{cls=risky}<1s"])
    mon = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, grace_windows=2)
    _feed(mon, t)
    rows = {r["id"]: r for r in mon.finalize(t)}
    assert rows["p50<100ms"]["passed"] is True and rows["p50<100ms"]["observed"] == 5.0
    assert rows["p50<100ms"]["windows_total"] == 10 and rows["p50<100ms"]["windows_failed"] == 1
    m = rows["max<100ms"]  # failed whole-run, one failed window, no violation (grace 2)
    assert (m["passed"], m["cumulative_passed"], m["violated"], m["windows_failed"]) == (False, False, False, 1)
    assert m["first_violation_ns"] is None
    tp = rows["throughput>=9/s"]
    assert tp["observed"] == pytest.approx(10.0) and tp["passed"] is True
    nd = rows["mean{cls=risky}<1000ms"]
    assert nd["passed"] is False and nd["cumulative_passed"] is None and nd["windows_total"] == 0


def test_relative_throughput_waits_for_late_completions():
    # window 0: 10 intended, 5 of them end in window 1 (slow); window 1: 10 intended, all end in it
    intended = [T0_NS + i * 100 * MS for i in range(20)]
    ends = [x + (1500 * MS if i < 5 else MS) for i, x in enumerate(intended)]
    t = synth.requests([1.0] * 20, ends_ns=ends, intended_ns=intended)
    ths = parse_thresholds(["throughput>=95%"])
    eager = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, settle_windows=0)
    patient = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, settle_windows=1)
    for mon in (eager, patient):
        _feed(mon, t)
    # eager judges window 0 as 5 done / 5 known intended = 100 %; patient knows all 10 were intended
    assert eager.finalize(t)[0]["windows_failed"] == 0
    assert patient.finalize(t)[0]["windows_failed"] == 1  # window 0: 5/10


def test_parse_sla_config():
    cfg = parse_sla_config(
        {
            "thresholds": list(LIGHTHOUSE_THRESHOLDS),
            "window": "5s",
            "initial_delay": "10s",
            "grace_windows": 3,
            "counting": "cumulative",
            "actions": ["record", "rollback"],
            "rollback": {"command": ["true"], "timeout": "3s"},
            "webhooks": [{"kind": "slack", "url_env": "HOOK"}],
        },
        env={"HOOK": "http://127.0.0.1:9/secret-path"},
    )
    assert (cfg.window, cfg.initial_delay, cfg.grace_windows, cfg.counting) == (5.0, 10.0, 3, "cumulative")
    assert len(cfg.thresholds) == 8 and set(cfg.actions.values()) == {("record", "rollback")}
    assert cfg.rollback.command == ("true",) and cfg.rollback.timeout == 3.0
    manifest = repr(cfg.to_manifest()) + repr(cfg)
    assert "secret-path" not in manifest and "HOOK" in manifest
    mon = cfg.monitor(t0_ns=T0_NS)
    assert mon.grace_windows == 3 and mon.window_s == 5.0
    per = parse_sla_config({"thresholds": ["p99<1s", "mean<1s"], "actions": {"p99 < 1s": ["abort"]}})
    assert per.actions == {"p99<1000ms": ("abort",), "mean<1000ms": ("record",)}
    assert parse_sla_config({}).thresholds == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"treshold": []}, "did you mean 'thresholds'"),
        ({"windows": "5s"}, "did you mean 'window'"),
        ({"thresholds": ["p99<<1s"]}, "position 4"),
        ({"thresholds": "p99<1s"}, "list of expressions"),
        ({"window": "fast"}, "sla.window"),
        ({"window": 0}, "must be > 0"),
        ({"grace_windows": 0}, "grace_windows"),
        ({"grace_windows": True}, "grace_windows"),
        ({"counting": "consecutiv"}, "did you mean 'consecutive'"),
        ({"actions": ["abrt"]}, "did you mean 'abort'"),
        ({"actions": "abort"}, "list of actions"),
        ({"thresholds": ["p99<1s"], "actions": {"p98<1s": ["abort"]}}, "not one of"),
        ({"actions": ["alert"]}, "webhooks is empty"),
        ({"actions": ["rollback"]}, "no sla.rollback"),
        ({"webhooks": [{"kind": "slak", "url": "http://x"}]}, "did you mean 'slack'"),
        ({"webhooks": [{"kind": "slack", "urll": "http://x"}]}, "did you mean 'url'"),
        ({"webhooks": [{"kind": "slack", "url_env": "RAYBENCH_TEST_UNSET_VAR"}]}, "is not set"),
        ({"webhooks": [{"kind": "pagerduty"}]}, "routing_key"),
        ({"rollback": {"cmd": "x"}}, "did you mean 'command'"),
        ({"rollback": {"command": []}}, "non-empty"),
    ],
)
def test_parse_sla_config_errors(table, message):
    with pytest.raises(ScenarioError, match=message):
        parse_sla_config(table, env={})


def test_nan_free_observations_on_lighthouse_defaults():
    t = synth.requests(ONE_TO_100, stages={"fuse": [0.5] * 100}, escalated=[i % 10 == 0 for i in range(100)])
    for th in parse_thresholds(list(LIGHTHOUSE_THRESHOLDS)):
        obs = th.evaluate(t, span_ns=(T0_NS, T0_NS + S))
        assert obs.observed is None or math.isfinite(obs.observed), th.id


def test_verdict_table_never_shows_a_failing_share_as_the_target():
    """98.99% against >= 99% must not print as "99%": the table adds digits until they differ."""
    from raybench.judge.sla_table import format_table

    ths = parse_thresholds(["share(latency<100ms)>=99%", "p99<100ms"])
    rows = [
        {"id": ths[0].id, "observed": 0.9899470113405635, "target": 0.99, "passed": False, "violated": False,
         "cumulative_passed": False, "windows_failed": 1, "windows_total": 1, "count": 20193},
        {"id": ths[1].id, "observed": 42.0, "target": 100.0, "passed": True, "violated": False,
         "cumulative_passed": True, "windows_failed": 0, "windows_total": 1, "count": 20193},
    ]  # fmt: skip
    lines = format_table(rows, ths)
    assert "98.99%" in lines[1] and ">= 99%" in lines[1] and "FAIL" in lines[1]
    assert "42.0ms" in lines[2] or "42ms" in lines[2], lines[2]
    rows[0]["observed"] = 0.99
    assert " 99% " in format_table(rows, ths)[1]


def test_whole_run_throughput_is_measured_from_the_warmup_end_not_the_last_warm_window():
    # 1 s windows, 1.5 s warm-up: before, the span began at the end of the last window holding
    # warm-up rows (2 s, since a warm-up request ended in window 1), dropping [1.5, 2) s.
    ends = [T0_NS + int(1.7 * S)] + [T0_NS + int(1.6 * S) + i * 10 * MS for i in range(100)]  # 100 in [1.6, 2.6) s
    intended = [T0_NS + S] + [e - 5 * MS for e in ends[1:]]
    table = synth.requests([5.0] * 101, ends_ns=ends, intended_ns=intended, warmup=[True] + [False] * 100)
    out, _ = evaluate_run(
        parse_thresholds(["throughput>=50/s"]), table, None, t0_ns=T0_NS, window_s=1.0, end_ns=T0_NS + 3 * S,
        warmup_s=1.5,
    )  # fmt: skip
    assert out[0]["count"] == 100 and out[0]["observed"] == pytest.approx(100 / 1.5) and out[0]["cumulative_passed"]
    # Both ways: 100 requests over 1.5 s is under 80/s.
    bad, _ = evaluate_run(
        parse_thresholds(["throughput>=80/s"]), table, None, t0_ns=T0_NS, window_s=1.0, end_ns=T0_NS + 3 * S,
        warmup_s=1.5,
    )  # fmt: skip
    assert bad[0]["cumulative_passed"] is False
