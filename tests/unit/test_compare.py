"""raybench.judge.compare, compare_stats and compare_metrics: the statistics (known values, properties),
the window choice, and end-to-end verdicts on synthetic run folders drawn from known distributions
(smoke-like ones among them: 200 req/s, 17 s measured)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synth_runs import SMOKE, T0_NS, make_run, write_run

from raybench.errors import ResultsError, UsageError
from raybench.judge import stats
from raybench.judge.compare import (
    PRIMARY,
    CompareConfig,
    Comparison,
    MetricComparison,
    compare,
    compare_runs,
    scenario_diff,
)
from raybench.judge.compare_data import (
    MIN_WINDOW_S,
    RunData,
    Sample,
    auto_window_s,
    load_run,
    metric_value,
    resolve_metric,
    run_from_table,
)
from raybench.judge.compare_table import comparison_path, format_comparison, inconclusive_line, write_comparison
from raybench.judge.significance import bootstrap_test, relative_change, smallest_p, verdict
from raybench.results.schema import SCHEMA_VERSION

# --------------------------------------------------------------------------------------------------
# The bootstrap test: p-value and interval from the same replicates


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-6, 6), min_size=1, max_size=60),
    st.sampled_from([0.5, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.01, 0.001, 2 / 41, 1 / 10]),
)
def test_bootstrap_interval_excludes_zero_exactly_when_p_is_below_the_level(reps: list[int], alpha: float) -> None:
    r = np.array(reps, dtype=float) / 4
    t = bootstrap_test(r, alpha)
    assert (t.ci_low > 0 or t.ci_high < 0) == (t.p_value < alpha)
    assert t.ci_low <= t.ci_high
    assert 2 / (r.size + 1) <= t.p_value <= 1.0


def test_bootstrap_test_known_values() -> None:
    reps = np.arange(1, 100, dtype=float)  # 99 replicates, all above 0
    t = bootstrap_test(reps, 0.05)
    assert t.p_value == pytest.approx(2 / 100)
    # i = ceil(0.05 * 100 / 2) - 2 = 1: the 2nd smallest and the 2nd largest
    assert (t.ci_low, t.ci_high) == (2.0, 98.0)
    assert bootstrap_test(np.r_[reps, [np.nan] * 5], 0.05) == t  # NaN replicates are dropped
    # 99 replicates cannot reach 1 %: unbounded interval, p above the level
    t = bootstrap_test(reps, 0.01)
    assert (t.ci_low, t.ci_high) == (-math.inf, math.inf) and t.p_value >= 0.01
    assert math.isnan(bootstrap_test([math.nan], 0.05).p_value)
    with pytest.raises(ValueError):
        bootstrap_test(reps, 0.0)


def test_smallest_p() -> None:
    assert smallest_p(3, 3, 10**9) == pytest.approx(0.1)  # 2 / C(6, 3): the smoke runs
    assert smallest_p(20, 20, 10**12) == pytest.approx(2 / math.comb(40, 20))
    assert smallest_p(20, 20, 999) == pytest.approx(2 / 1000)  # the bootstrap's resolution
    assert smallest_p(1, 1, 1000) == 1.0
    assert smallest_p(0, 5, 1000) == 1.0


# --------------------------------------------------------------------------------------------------
# Relative change, verdict


def test_relative_change() -> None:
    assert relative_change(110.0, 100.0) == pytest.approx(0.1)
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(1.0, 0.0) == math.inf
    assert relative_change(-1.0, -2.0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "change,p,floor,lower_is_better,expected",
    [
        (0.15, 0.001, 1e-6, True, "regression"),
        (0.15, 0.001, 1e-6, False, "improvement"),
        (-0.15, 0.001, 1e-6, True, "improvement"),
        (-0.15, 0.001, 1e-6, False, "regression"),
        (0.15, 0.2, 1e-6, True, "insignificant change"),
        (0.15, 0.001, 0.1, True, "inconclusive"),  # 3 vs 3 windows cannot reach 0.05
        (0.05, 0.0001, 0.1, True, "same"),
        (0.05, 0.0001, 1e-6, True, "same"),
        (math.nan, math.nan, math.nan, True, "n/a"),
    ],
)
def test_verdict(change: float, p: float, floor: float, lower_is_better: bool, expected: str) -> None:
    assert verdict(change, p, floor, threshold=0.1, alpha=0.05, lower_is_better=lower_is_better) == expected


def test_config_rejects_bad_values() -> None:
    with pytest.raises(UsageError, match="threshold"):
        CompareConfig(threshold=-0.1)
    with pytest.raises(UsageError, match="window"):
        CompareConfig(window_s=0)
    with pytest.raises(UsageError, match="alpha"):
        CompareConfig(alpha=1.5)
    with pytest.raises(UsageError, match="bootstrap"):
        CompareConfig(bootstrap=5)
    assert CompareConfig().primary_alpha == pytest.approx(0.05 / len(PRIMARY))


# --------------------------------------------------------------------------------------------------
# Samples: quantiles over resampled windows use the same nearest-rank definition as stats.py


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 4)), max_size=40),
    st.sampled_from([1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0]),
    st.lists(st.lists(st.integers(0, 3), min_size=5, max_size=5), min_size=1, max_size=4),
)
def test_replicate_equals_percentile_of_replicated_rows(
    rows: list[tuple[int, int]], q: float, counts: list[list[int]]
) -> None:
    values = np.array([float(v) for v, _ in rows])
    window = np.array([w for _, w in rows], dtype=np.int64)
    s = Sample("quantile", q, values, window, np.ones(5))
    got = s.replicate(np.array(counts, dtype=np.float64))
    searched = s.replicate(np.array(counts, dtype=np.float64), dense_cells=0)
    assert np.array_equal(got, searched, equal_nan=True)
    for b, weights in enumerate(counts):
        expanded = np.repeat(values, np.array(weights)[window]) if values.size else values
        expected = stats.percentile(expanded, q)
        assert (math.isnan(expected) and math.isnan(got[b])) or got[b] == expected
    per_window = [stats.percentile(values[window == k], q) for k in range(5) if (window == k).any()]
    assert s.per_window().tolist() == per_window


# --------------------------------------------------------------------------------------------------
# Run folders


def test_load_run_windows_and_warmup(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path, "r", seed=1, windows=4, window_s=5.0))
    assert run.lengths.tolist() == [5.0, 5.0, 5.0, 5.0]
    assert run.window.min() == 0 and run.window.max() == 3
    # warm-up rows (intended before load_start_ns) are left out
    assert run.cols["latency"].size > 0
    assert run.classes == ["complex", "risky", "safe"]
    # a 7 s window grid over 20 s: 7 + 7 + a 6 s remainder (not merged: longer than W/2)
    assert load_run(run.path, window_s=7.0).lengths.tolist() == [7.0, 7.0, 6.0]
    # a 6 s grid: 6 + 6 + 6 + 2 s -> the 2 s sliver joins the last full window
    assert load_run(run.path, window_s=6.0).lengths.tolist() == [6.0, 6.0, 8.0]
    assert T0_NS > 0


def test_missing_or_empty_run_is_a_results_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="not a run folder"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="manifest"):
        load_run(tmp_path / "empty")


def test_resolve_metric() -> None:
    assert resolve_metric("p99").name == "p99_ms"
    assert resolve_metric("throughput").name == "throughput_rps"
    with pytest.raises(UsageError, match="did you mean 'p99'"):
        resolve_metric("p98")


# --------------------------------------------------------------------------------------------------
# End to end on synthetic runs


@pytest.fixture(scope="module")
def big_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A baseline and variants with planted changes; 400 requests/s for 12 windows of 5 s."""
    root = tmp_path_factory.mktemp("runs")
    kw = {"rate_rps": 400.0, "windows": 12}
    return {
        "base": write_run(root, "base", seed=1, **kw),
        "p15": write_run(root, "p15", seed=2, latency_scale=1.15, **kw),
        "p25": write_run(root, "p25", seed=2, latency_scale=1.25, **kw),
        "p05": write_run(root, "p05", seed=3, latency_scale=1.05, **kw),
        "faster": write_run(root, "faster", seed=4, latency_scale=0.75, **kw),
        "slow_tp": write_run(root, "slow_tp", seed=5, **{**kw, "rate_rps": 320.0}),
        "errors": write_run(root, "errors", seed=6, error_rate=0.03, agents=200, **kw),
    }


def test_plus_25_percent_p99_is_a_regression(big_runs: dict[str, Path]) -> None:
    comp = compare_runs(big_runs["base"], big_runs["p25"])
    row = comp.row("p99_ms")
    assert 0.15 < row.change < 0.35
    assert row.verdict == "regression", format_comparison(comp)
    assert row.ci_low > 0.10 and row.p_adjusted < 0.05  # the whole interval is beyond the threshold
    assert comp.row("throughput_rps").verdict == "same"


def test_a_change_past_the_threshold_is_a_regression_only_when_its_interval_is_too(big_runs: dict[str, Path]) -> None:
    """+15 % on 12 windows: past the 10 % threshold, but the interval reaches back inside it."""
    comp = compare_runs(big_runs["base"], big_runs["p15"])
    row = comp.row("p99_ms")
    assert row.change > 0.10
    assert row.verdict == ("regression" if row.ci_low > 0.10 else "insignificant change"), format_comparison(comp)
    assert row.verdict == "insignificant change" and row.ci_low < 0.10 < row.ci_high


def test_plus_5_percent_is_not_flagged(big_runs: dict[str, Path]) -> None:
    comp = compare_runs(big_runs["base"], big_runs["p05"])
    assert comp.row("p99_ms").verdict in ("same", "insignificant change")
    assert comp.regressions == [], format_comparison(comp)


def test_improvement_is_reported_as_such(big_runs: dict[str, Path]) -> None:
    comp = compare_runs(big_runs["base"], big_runs["faster"])
    assert comp.row("p99_ms").verdict == "improvement"
    assert comp.row("p50_ms").verdict == "improvement"
    assert comp.regressions == []


def test_throughput_down_and_errors_up_are_regressions(big_runs: dict[str, Path]) -> None:
    comp = compare_runs(big_runs["base"], big_runs["slow_tp"])
    assert comp.row("throughput_rps").change == pytest.approx(-0.2, abs=0.03)
    assert comp.row("throughput_rps").verdict == "regression"
    comp = compare_runs(big_runs["base"], big_runs["errors"])
    assert comp.row("error_rate").verdict == "regression"
    assert comp.scenario_diff == ("run.agents: 100 -> 200",)
    lines = format_comparison(comp)
    assert any(line.startswith("warning: the runs are of different scenarios") for line in lines)
    assert "  run.agents: 100 -> 200" in lines


def test_with_window_and_auto_window(tmp_path: Path) -> None:
    smoke = run_from_table(*make_run("s", seed=1, **SMOKE), tmp_path / "s")
    assert smoke.measured_s == pytest.approx(17.0)
    # 17 s of load: 20 windows of 0.85 s, whatever window it was loaded with
    assert auto_window_s(smoke, smoke) == pytest.approx(0.85)
    cut = smoke.with_window(0.85)
    assert cut.lengths.size == 20 and cut.lengths.sum() == pytest.approx(17.0)
    assert np.array_equal(np.bincount(cut.window, minlength=20) > 0, np.ones(20, bool))
    assert smoke.lengths.tolist() == [5.0, 5.0, 7.0]  # the 5 s grid it was loaded with is untouched
    # a long run keeps 5 s windows (more of them); the shorter run sets the window of a pair
    long = run_from_table(*make_run("l", seed=2, windows=24, rate_rps=200.0), tmp_path / "l")
    assert auto_window_s(long, long) == 5.0
    assert auto_window_s(long, smoke) == pytest.approx(0.85)
    # floors: at 20 req/s a window needs 2.5 s for 50 requests; 4 s of load still gets 0.5 s windows
    sparse = run_from_table(*make_run("p", seed=3, rate_rps=20.0, duration_s=17.0, warmup_s=3.0), tmp_path / "p")
    assert auto_window_s(sparse, smoke) == pytest.approx(2.5, abs=0.2)
    short = run_from_table(*make_run("t", seed=4, **{**SMOKE, "duration_s": 4.0}), tmp_path / "t")
    assert auto_window_s(short, short) == MIN_WINDOW_S


def smoke_pair(tmp_path: Path, seed: int, *, both: dict | None = None, **current: float) -> tuple[RunData, RunData]:
    """A smoke-like baseline and current run in memory (``both``, ``current``: make_run overrides)."""
    a = run_from_table(*make_run(f"a{seed}", seed=seed, **{**SMOKE, **(both or {})}), tmp_path / f"a{seed}")
    b = run_from_table(
        *make_run(f"b{seed}", seed=seed + 1, **{**SMOKE, **(both or {}), **current}), tmp_path / f"b{seed}"
    )
    return a, b


@pytest.mark.slow  # a rate over many pairs: make test runs it, make test-fast does not
def test_same_scenario_different_seeds_false_positive_rate(tmp_path: Path) -> None:
    """Pairs of smoke-like runs of one scenario with different seeds: how often does the gate fail?

    Each run: 200 req/s, 17 s measured, lognormal latencies per class with an AR(1) level that
    drifts second by second, 16 % escalated, 1 % errors. The runs stay in memory (the same code as
    load_run after reading the folder); 400 bootstrap replicates keep the test fast (the primary
    level, 0.0125, needs more than 159).
    """
    pairs = 150
    config = CompareConfig(bootstrap=400)
    flagged, inconclusive, exploratory = 0, 0, 0
    for i in range(pairs):
        comp = compare(*smoke_pair(tmp_path, 10_000 + 2 * i), config)
        assert comp.window_auto and comp.row("p99_ms").windows_baseline == 20
        flagged += comp.outcome == "regression"
        inconclusive += comp.outcome == "inconclusive"
        exploratory += bool(comp.exploratory_regressions)
    rate = flagged / pairs
    print(
        f"false-positive rate of the gate: {flagged}/{pairs} = {rate:.1%} of same-scenario pairs; "
        f"pairs with an exploratory regression: {exploratory}"
    )
    assert rate <= 0.05
    assert inconclusive == 0


@pytest.mark.parametrize("seed", [1, 11, 21])
def test_smoke_30_percent_slower_is_a_regression(tmp_path: Path, seed: int) -> None:
    comp = compare(*smoke_pair(tmp_path, seed, latency_scale=1.3))
    assert comp.outcome == "regression", "\n".join(format_comparison(comp))
    for metric in ("p50_ms", "p99_ms"):
        row = comp.row(metric)
        assert row.verdict == "regression" and row.primary
        assert row.ci_low > 0.10 and row.p_adjusted < 0.05 and row.ci_level == pytest.approx(1 - 0.05 / 4)


@pytest.mark.parametrize("seed", [1, 11, 21])
def test_smoke_5_percent_slower_is_not_a_regression(tmp_path: Path, seed: int) -> None:
    comp = compare(*smoke_pair(tmp_path, seed, latency_scale=1.05))
    for metric in ("p50_ms", "p99_ms"):
        assert comp.row(metric).verdict in ("same", "insignificant change")
    assert comp.outcome == "pass", "\n".join(format_comparison(comp))


@pytest.mark.slow  # a rate over many pairs: make test runs it, make test-fast does not
def test_smoke_5_percent_slower_is_below_the_threshold_in_almost_every_pair(tmp_path: Path) -> None:
    """A +5 % slowdown is below the 10 % threshold: the gate fails only when the whole interval of a
    primary metric lies past 10 %, which noise (each run's p50 and p99 vary by about 2.5 % at 17 s of
    load) rarely achieves. Before the threshold was tested, 1 pair in 6 failed."""
    pairs, flagged = 40, 0
    for i in range(pairs):
        comp = compare(*smoke_pair(tmp_path, 20_000 + 2 * i, latency_scale=1.05), CompareConfig(bootstrap=400))
        flagged += comp.outcome == "regression"
        assert all(r.change > 0.10 and r.ci_low > 0.10 for r in comp.regressions)
    print(f"+5 % slowdowns that failed the gate: {flagged}/{pairs}")
    assert flagged / pairs <= 0.05


def test_smoke_too_few_windows_is_inconclusive(tmp_path: Path) -> None:
    a, b = smoke_pair(tmp_path, 1, latency_scale=1.3)
    comp = compare(a, b, CompareConfig(window_s=5.0))  # 3 windows per run, as in the issue
    assert comp.outcome == "inconclusive" and not comp.window_auto
    row = comp.row("p50_ms")
    assert row.verdict == "inconclusive" and row.p_min == pytest.approx(0.1)
    assert (row.windows_baseline, row.windows_current) == (3, 3)
    line = inconclusive_line(comp)
    assert line is not None and "3 and 3 windows of 5s (--window) allow no p below 0.1" in line
    assert "p < 0.0125" in line
    assert line in format_comparison(comp)
    assert "insignificant" not in "".join(format_comparison(comp)[:8])
    # latencies x3 on the same 3 windows: still no p below 0.1, still inconclusive
    assert compare(*smoke_pair(tmp_path, 3, latency_scale=3.0), CompareConfig(window_s=5.0)).outcome == "inconclusive"


def test_a_regression_wins_over_an_unreachable_primary_row() -> None:
    def row(metric: str, verdict: str, p_min: float) -> MetricComparison:
        values = (1.0, 1.3, 0.3, 0.2, 0.4, 0.001, 0.004)
        return MetricComparison("all", metric, "ms", True, *values, "block-bootstrap", 20, 3, verdict,
                                "primary", 0.0125, p_min)  # fmt: skip

    rows = (row("p50_ms", "regression", 1e-6), row("p99_ms", "inconclusive", 0.1))
    comp = Comparison("a", "b", CompareConfig(window_s=1.0), rows, window_auto=False)
    assert comp.outcome == "regression" and [r.metric for r in comp.unreachable] == ["p99_ms"]
    assert Comparison("a", "b", comp.config, rows[1:]).outcome == "inconclusive"
    assert Comparison("a", "b", comp.config, (row("p50_ms", "same", 1e-6),)).outcome == "pass"


def test_short_load_is_inconclusive_and_few_replicates_say_so(tmp_path: Path) -> None:
    short = {"duration_s": 2.0}  # 2 s of load in each run: 4 windows of 0.5 s
    comp = compare(*smoke_pair(tmp_path, 5, both=short, latency_scale=1.3))
    assert comp.outcome == "inconclusive"
    assert comp.row("p50_ms").p_min == pytest.approx(2 / math.comb(8, 4))
    assert "4 and 4 windows of 0.5s (auto) allow no p below 0.0286" in (inconclusive_line(comp) or "")
    # a long baseline and the same short run: 34 + 4 windows can show it
    assert compare(*smoke_pair(tmp_path, 5, latency_scale=1.3, duration_s=2.0)).outcome == "regression"
    comp = compare(*smoke_pair(tmp_path, 5), CompareConfig(bootstrap=100))
    assert comp.outcome == "inconclusive"
    assert "100 bootstrap replicates allow no p below 0.0198" in (inconclusive_line(comp) or "")


def check_agreement(comp: Comparison) -> None:
    """Every verdict agrees with the interval printed beside it."""
    for r in comp.rows:
        if not r.reachable or math.isnan(r.change):
            continue
        # beyond the threshold the interval is tested against the threshold, within it against 0
        ref = math.copysign(comp.config.threshold, r.change) if abs(r.change) > comp.config.threshold else 0.0
        excludes = r.ci_low > ref or r.ci_high < ref
        assert excludes == (r.p_adjusted < comp.config.alpha), r
        if r.verdict in ("regression", "improvement"):
            assert excludes, r
        if r.verdict == "insignificant change":
            assert not excludes, r


def test_verdicts_agree_with_their_intervals(tmp_path: Path) -> None:
    for seed, scale in ((1, 1.0), (3, 1.08), (5, 1.12), (7, 1.3)):
        comp = compare(*smoke_pair(tmp_path, seed, latency_scale=scale), CompareConfig(bootstrap=300))
        check_agreement(comp)
        assert [r.role for r in comp.rows[: len(PRIMARY)]] == ["primary"] * len(PRIMARY)
        assert all(r.role == "exploratory" for r in comp.rows[len(PRIMARY) :])


def test_table_lists_primary_rows_first_and_marks_exploratory(tmp_path: Path) -> None:
    comp = compare(*smoke_pair(tmp_path, 7, latency_scale=1.3))
    lines = format_comparison(comp)
    first = next(i for i, line in enumerate(lines) if line.startswith("primary:"))
    second = next(i for i, line in enumerate(lines) if line.startswith("exploratory:"))
    assert [line.split()[1] for line in lines[first + 1 : second]] == list(PRIMARY)
    assert "REGRESSION" in lines[first + 1] and "98.75% intervals" in lines[first]
    assert "never in the exit code" in lines[second]
    assert lines[-1].startswith("2 regression(s), 0 improvement(s) in primary metrics: p50_ms, p99_ms")
    assert lines[-1].endswith("verdict: regression")


def test_seeded_bootstrap_is_reproducible(big_runs: dict[str, Path]) -> None:
    a = load_run(big_runs["base"])
    b = load_run(big_runs["p05"])
    first = compare(a, b, CompareConfig(bootstrap=100, seed=3))
    again = compare(a, b, CompareConfig(bootstrap=100, seed=3))
    assert [(r.ci_low, r.ci_high) for r in first.rows] == [(r.ci_low, r.ci_high) for r in again.rows]
    assert metric_value(a, "p99_ms") == first.row("p99_ms").baseline


def test_comparison_table_written_atomically_and_never_overwritten(big_runs: dict[str, Path], tmp_path: Path) -> None:
    comp = compare(load_run(big_runs["base"]), load_run(big_runs["p05"]), CompareConfig(bootstrap=200))
    first = write_comparison(comp, comparison_path(tmp_path, comp.baseline_run_id))
    second = write_comparison(comp, comparison_path(tmp_path, comp.baseline_run_id))
    third = comparison_path(tmp_path, comp.baseline_run_id)
    assert (first.name, second.name, third.name) == (
        "comparison.arrow",
        "comparison-base.arrow",
        "comparison-base-2.arrow",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparison-base.arrow", "comparison.arrow"]
    table = pa.ipc.open_file(pa.memory_map(str(first))).read_all()
    assert table.schema.metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    assert table.schema.metadata[b"table"] == b"comparison"
    assert table.num_rows == len(comp.rows)
    rows = table.to_pylist()
    p99 = next(r for r in rows if r["metric"] == "p99_ms" and r["scope"] == "all")
    assert p99["verdict"] == comp.row("p99_ms").verdict
    assert p99["baseline_run_id"] == "base" and p99["current_run_id"] == "p05"
    assert p99["role"] == "primary" and p99["ci_level"] == pytest.approx(0.9875)
    assert p99["window_s"] == comp.config.window_s == 3.0 and p99["test"] == "block-bootstrap"
    assert sorted(set(table.column("role").to_pylist())) == ["exploratory", "primary"]
    assert [r["metric"] for r in rows if r["role"] == "primary"] == list(PRIMARY)
    assert not table.schema.field("role").nullable
    with pytest.raises(UsageError, match="already exists"):
        comparison_path(tmp_path, "base", "comparison.arrow")


def test_scenario_diff_ignores_seed_run_id_and_out() -> None:
    a = {"name": "s", "seed": 1, "run_id": "x", "out": "a", "load": {"rate": 10, "shape": "flat"}}
    b = {"name": "s", "seed": 2, "run_id": "y", "out": "b", "load": {"rate": 20}, "agents": 5}
    assert scenario_diff(a, b) == [
        "agents: '<absent>' -> 5",
        "load.rate: 10 -> 20",
        "load.shape: 'flat' -> '<absent>'",
    ]
