"""The report's grouped statistics on controlled arrays (no run folder): the rank formula, grouped
exact percentiles, 1 s buckets, the percentile-distribution grid, and which SLA thresholds a
figure may draw. Every expected value is recomputed here with plain numpy or raybench.judge.stats."""

from __future__ import annotations

import numpy as np
import pytest

from raybench.judge.stats import percentile
from raybench.report.distribution import distribution_curve, quantile_grid
from raybench.report.marks import percentile_marks, percentile_points, scope_of, share_points
from raybench.report.series import buckets, crosstab, group, rank_index

QS = (0.1, 7.0, 29.0, 50.0, 57.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 99, 100, 101, 1000, 1001, 12_345])
def test_rank_index_is_the_nearest_rank_of_judge_stats(n):
    v = np.sort(np.random.default_rng(n).lognormal(3.0, 1.0, n))
    for q in QS:
        assert v[rank_index(np.array([n]), q)[0]] == percentile(v, q), (n, q)


def test_group_gives_each_groups_exact_percentiles_and_drops_nan_and_out_of_range():
    rng = np.random.default_rng(1)
    values = rng.lognormal(2.0, 1.2, 20_000)
    values[::37] = np.nan
    codes = rng.integers(-1, 60, values.size)  # -1: outside every group
    g = group(codes, values, 55)  # codes 55..59 are out of range too
    with_order = group(codes, values, 55, order=np.argsort(values))
    for q in (50.0, 99.0, 99.9):
        got, got2 = g.percentile(q), with_order.percentile(q)
        for k in range(55):
            x = values[(codes == k) & ~np.isnan(values)]
            assert got[k] == got2[k] == percentile(x, q), (k, q)
    for k in range(55):
        x = values[(codes == k) & ~np.isnan(values)]
        assert g.counts[k] == x.size
        assert g.max()[k] == x.max()
        assert g.sums()[k] == pytest.approx(x.sum())


def test_group_of_an_empty_group_is_nan():
    g = group(np.array([0, 0, 2]), np.array([1.0, 2.0, 3.0]), 3)
    assert g.counts.tolist() == [2, 0, 1]
    p = g.percentile(99.0)
    assert p[0] == 2.0 and np.isnan(p[1]) and p[2] == 3.0


def test_one_second_buckets_count_and_percentiles_as_numpy_does():
    rng = np.random.default_rng(2)
    t0 = 1_700_000_000_000_000_000
    ends = t0 + np.sort(rng.integers(0, 20_000_000_000, 5_000))
    ends = np.concatenate([ends, [t0 + 7_000_000_000]])  # exactly on a bucket edge: bucket 7
    lat = rng.lognormal(3.0, 0.8, ends.size)
    b = buckets(t0, ends, end_ns=t0 + 25_000_000_000)
    assert b.bucket_s == 1.0 and b.n == 26  # up to the end of the load, not only the last request
    k = (ends - t0) // 1_000_000_000
    expected = np.bincount(k, minlength=b.n)
    assert b.counts(ends).tolist() == expected.tolist()
    assert np.array_equal(b.per_second(ends), expected / 1.0)
    ps = b.percentiles(ends, lat, (50.0, 99.0))
    for i in range(b.n):
        x = lat[k == i]
        for q in (50.0, 99.0):
            if x.size:
                assert ps[q][i] == percentile(x, q)
            else:
                assert np.isnan(ps[q][i])


def test_a_long_run_gets_buckets_of_whole_seconds():
    t0 = 0
    b = buckets(t0, np.array([0, 10 * 3600 * 10**9]))  # ten hours
    assert b.bucket_ns % 1_000_000_000 == 0 and b.bucket_ns > 1_000_000_000
    assert b.n <= 3600


def test_crosstab_counts_pairs():
    a = np.array([0, 0, 1, 2, 2, 2, -1])
    b = np.array([1, 1, 0, 0, 1, 1, 0])
    assert crosstab(a, 3, b, 2).tolist() == [[0, 2], [1, 0], [1, 2]]


def test_percentile_distribution_points_are_judge_stats_percentiles():
    v = np.sort(np.random.default_rng(3).lognormal(3.0, 1.0, 9_999))
    q, values = distribution_curve(v)
    assert q[0] == 0.0 and values[0] == v[0]  # starts at the minimum
    assert values[-1] == v[-1]  # ends at the maximum
    for qi, vi in zip(q[1:], values[1:], strict=True):
        assert vi == percentile(v, min(float(qi), 100.0))
    x = 1.0 / (1.0 - quantile_grid(v.size) / 100.0)
    assert np.allclose(np.diff(np.log10(x)), np.diff(np.log10(x))[0])  # evenly spaced in log(1/(1-q))


THRESHOLDS = [
    "p99<500ms",
    "p50<40ms",
    "p99{cls=risky}<1s",
    "p95<800ms",
    "share(latency<200ms){escalated=false}>=99%",
    "share(latency<100ms)>=90%",
    "p99{stage=lease_wait}<5ms",
    "error_rate<1%",
]


def test_a_threshold_line_goes_only_on_its_own_metric_and_scope():
    assert [m.label for m in percentile_marks(THRESHOLDS, 99.0)] == ["p99<500ms"]
    assert [m.label for m in percentile_marks(THRESHOLDS, 50.0)] == ["p50<40ms"]
    assert [m.label for m in percentile_marks(THRESHOLDS, 99.0, "cls=risky")] == ["p99{cls=risky}<1s"]
    assert percentile_marks(THRESHOLDS, 99.0, "cls=safe") == []
    assert [m.value for m in percentile_marks(THRESHOLDS, 99.0, stage="lease_wait")] == [5.0]
    assert percentile_marks(THRESHOLDS, 99.0, stage="expert_queue") == []
    # the share threshold of scope escalated=false is on no curve drawn (all, cls=...)
    shares = share_points(THRESHOLDS, ["all", "cls=risky"])
    assert [(m.limit_ms, m.value) for m in shares["all"]] == [(100.0, 0.9)]
    assert shares["cls=risky"] == []
    points = percentile_points(THRESHOLDS, ["all", "cls=risky"])
    assert sorted(m.label for m in points["all"]) == ["p50<40ms", "p95<800ms", "p99<500ms"]
    assert [m.label for m in points["cls=risky"]] == ["p99{cls=risky}<1s"]
    assert scope_of("node=abc") == (("node", "abc"),) and scope_of("all") == ()


def test_string_columns_read_as_codes_into_sorted_values_used():
    import pyarrow as pa

    from raybench.report.data import _Table

    plain = pa.chunked_array([pa.array(["b", "a", None]), pa.array(["c", "b"])])
    dictionary = pa.chunked_array(
        [pa.DictionaryArray.from_arrays(pa.array([0, 2, 2, 0, 2], pa.int32()), pa.array(["z", "unused", "a"]))]
    )
    t = _Table(pa.table({"plain": plain, "dict": dictionary}))
    labels, codes = t.codes("plain")
    assert labels == ["a", "b", "c"] and codes.tolist() == [1, 0, -1, 2, 1]
    assert t.strings("plain").tolist() == ["b", "a", None, "c", "b"]
    labels, codes = t.codes("dict")
    assert labels == ["a", "z"] and codes.tolist() == [1, 0, 0, 1, 0]
    empty = _Table(pa.table({"s": pa.chunked_array([], pa.string())}))
    assert empty.codes("s")[0] == [] and empty.codes("s")[1].size == 0
