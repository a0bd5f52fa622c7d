"""raybench.compare and raybench.compare_metrics: the statistics (known values, scipy cross-checks,
properties) and end-to-end verdicts on synthetic run folders drawn from known distributions."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synth_runs import T0_NS, make_run, write_run

from raybench import stats
from raybench.compare import (
    CompareConfig,
    compare,
    compare_runs,
    comparison_path,
    format_comparison,
    holm,
    mann_whitney_u,
    relative_change,
    scenario_diff,
    verdict,
    write_comparison,
)
from raybench.compare_metrics import Sample, load_run, metric_value, resolve_metric, run_from_table
from raybench.errors import ResultsError, UsageError
from raybench.schema import SCHEMA_VERSION

try:  # scipy is a test extra, used only to cross-check raybench's own statistics
    import scipy.stats as scipy_stats
except ImportError:  # pragma: no cover - only without the test extras
    scipy_stats = None
needs_scipy = pytest.mark.skipif(scipy_stats is None, reason="scipy is not installed (pip install -e '.[test]')")

# --------------------------------------------------------------------------------------------------
# Mann–Whitney U


@needs_scipy
@pytest.mark.parametrize("n1,n2", [(3, 4), (7, 7), (12, 12), (5, 20)])
def test_mann_whitney_exact_matches_scipy_without_ties(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 100 + n2)
    for shift in (0.0, 0.5, 1.5):
        x, y = rng.normal(size=n1), rng.normal(shift, size=n2)
        ours = mann_whitney_u(x, y)
        ref = scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
        assert ours.method == "exact"
        assert ours.u == pytest.approx(ref.statistic)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


@needs_scipy
def test_mann_whitney_normal_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 8, size=60).astype(float), rng.integers(1, 9, size=50).astype(float)
    ours = mann_whitney_u(x, y)
    ref = scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.method == "normal"
    assert ours.u == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


@needs_scipy
def test_mann_whitney_exact_with_ties_matches_enumeration() -> None:
    x, y = [1.0, 2.0, 2.0, 3.0, 5.0], [2.0, 3.0, 3.0, 4.0, 6.0, 6.0]
    both = np.array(x + y)
    ranks = scipy_stats.rankdata(both)
    mean = len(x) * (both.size + 1) / 2
    observed = abs(ranks[: len(x)].sum() - mean)
    sums = [ranks[list(c)].sum() for c in itertools.combinations(range(both.size), len(x))]
    expected = np.mean([abs(s - mean) >= observed - 1e-9 for s in sums])
    result = mann_whitney_u(x, y)
    assert result.method == "exact"
    assert result.p_value == pytest.approx(expected, rel=1e-12)


def test_mann_whitney_edge_cases() -> None:
    assert mann_whitney_u([1.0, 1.0], [1.0, 1.0, 1.0]).p_value == 1.0
    assert mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).p_value == pytest.approx(0.1)  # 2 / C(6, 3)
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError):
        mann_whitney_u([math.nan], [1.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=15),
    st.lists(st.integers(0, 6), min_size=1, max_size=15),
)
def test_mann_whitney_properties(x: list[int], y: list[int]) -> None:
    a, b = mann_whitney_u(x, y), mann_whitney_u(y, x)
    assert 0.0 < a.p_value <= 1.0
    assert a.p_value == pytest.approx(b.p_value, rel=1e-9)
    assert a.u + b.u == pytest.approx(len(x) * len(y))


# --------------------------------------------------------------------------------------------------
# Holm, relative change, verdict


def test_holm_known_values() -> None:
    out = holm([0.01, 0.04, math.nan, 0.03])
    assert out[0] == pytest.approx(0.03)
    assert out[1] == pytest.approx(0.06)
    assert math.isnan(out[2])
    assert out[3] == pytest.approx(0.06)
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def test_relative_change() -> None:
    assert relative_change(110.0, 100.0) == pytest.approx(0.1)
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(1.0, 0.0) == math.inf
    assert relative_change(-1.0, -2.0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "change,p,ci,lower_is_better,expected",
    [
        (0.15, 0.001, (0.05, 0.25), True, "regression"),
        (0.15, 0.001, (0.05, 0.25), False, "improvement"),
        (-0.15, 0.001, (-0.25, -0.05), True, "improvement"),
        (-0.15, 0.001, (-0.25, -0.05), False, "regression"),
        (0.15, 0.2, (0.05, 0.25), True, "insignificant change"),
        (0.15, 0.001, (-0.01, 0.25), True, "insignificant change"),
        (0.05, 0.0001, (0.03, 0.07), True, "same"),
        (math.nan, math.nan, (math.nan, math.nan), True, "n/a"),
    ],
)
def test_verdict(change: float, p: float, ci: tuple[float, float], lower_is_better: bool, expected: str) -> None:
    assert verdict(change, p, ci, threshold=0.1, alpha=0.05, lower_is_better=lower_is_better) == expected


def test_config_rejects_bad_values() -> None:
    with pytest.raises(UsageError, match="threshold"):
        CompareConfig(threshold=-0.1)
    with pytest.raises(UsageError, match="window"):
        CompareConfig(window_s=0)


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
        "p05": write_run(root, "p05", seed=3, latency_scale=1.05, **kw),
        "faster": write_run(root, "faster", seed=4, latency_scale=0.85, **kw),
        "slow_tp": write_run(root, "slow_tp", seed=5, **{**kw, "rate_rps": 320.0}),
        "errors": write_run(root, "errors", seed=6, error_rate=0.03, agents=200, **kw),
    }


def test_plus_15_percent_p99_is_a_regression(big_runs: dict[str, Path]) -> None:
    comp = compare_runs(big_runs["base"], big_runs["p15"])
    row = comp.row("p99_ms")
    assert 0.10 < row.change < 0.25
    assert row.verdict == "regression", format_comparison(comp)
    assert row.ci_low > 0 and row.p_adjusted < 0.05
    assert comp.row("throughput_rps").verdict == "same"


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


def test_same_scenario_different_seeds_false_positive_rate(tmp_path: Path) -> None:
    """Pairs of runs of one scenario with different seeds: how often is any regression reported?

    Runs are small (about 1,300 rows, 12 windows) so that per-class metrics are noisy. To keep the
    test fast the runs stay in memory (the same code as load_run after reading the folder) and the
    bootstrap uses 200 replicates; the verdict rule is the default one.
    """
    pairs = 100
    config = CompareConfig(bootstrap=200)
    flagged = 0
    for i in range(pairs):
        a = run_from_table(*make_run(f"a{i}", seed=10_000 + 2 * i), tmp_path / f"a{i}")
        b = run_from_table(*make_run(f"b{i}", seed=10_001 + 2 * i), tmp_path / f"b{i}")
        flagged += bool(compare(a, b, config).regressions)
    rate = flagged / pairs
    print(f"false-positive rate: {flagged}/{pairs} = {rate:.1%} of same-scenario pairs flagged")
    assert rate < 0.05


def test_seeded_bootstrap_is_reproducible(big_runs: dict[str, Path]) -> None:
    a = load_run(big_runs["base"])
    b = load_run(big_runs["p05"])
    first = compare(a, b, CompareConfig(bootstrap=100, seed=3))
    again = compare(a, b, CompareConfig(bootstrap=100, seed=3))
    assert [(r.ci_low, r.ci_high) for r in first.rows] == [(r.ci_low, r.ci_high) for r in again.rows]
    assert metric_value(a, "p99_ms") == first.row("p99_ms").baseline


def test_comparison_table_written_atomically_and_never_overwritten(big_runs: dict[str, Path], tmp_path: Path) -> None:
    comp = compare(load_run(big_runs["base"]), load_run(big_runs["p05"]), CompareConfig(bootstrap=50))
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
