"""The report's sections on synthetic run folders (no Ray): every number in the new sections
recomputed here from the rows with numpy and raybench.judge.stats, SLA lines only on their own
metric and scope, a sentence instead of an empty chart, and the figure fixes (units, legend,
colours)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from synth_runs import make_run

from raybench.judge.stats import percentile
from raybench.report import plots, plots_load, single, timeline
from raybench.report.data import load
from raybench.report.html import format_ms, num, pct
from raybench.results import schema, store, windows

pytest.importorskip("matplotlib")

NODES = ("node-a", "node-b", "node-c")
REGIONS = ("us-east", "eu-west")


def synth(root: Path, run_id: str = "syn", *, conflicts: bool = True, thresholds: list[str] | None = None,
          seed: int = 5, outcomes: bool = True, **kw: Any) -> Path:  # fmt: skip
    """A run folder: requests (three nodes, two regions, errors and timeouts), windows.arrow from
    the run code, a manifest with the thresholds; optionally without any lease conflict."""
    table, manifest = make_run(run_id, seed=seed, windows=kw.pop("windows", 6), rate_rps=kw.pop("rate", 60.0), **kw)
    rng = np.random.default_rng(seed)
    n = table.num_rows
    cols = {
        "node_id": pa.array(np.array(NODES)[rng.integers(0, len(NODES), n)]),
        "region": pa.array(np.array(REGIONS)[rng.integers(0, len(REGIONS), n)]),
    }
    if not conflicts:
        cols["conflicts"] = pa.array(np.zeros(n, np.int32))
    if not outcomes:
        cols["outcome"] = pa.array(["ok"] * n)
        cols["error"] = pa.array([None] * n, pa.string())
    for name, col in cols.items():
        table = table.set_column(table.schema.get_field_index(name), name, col)
    manifest["scenario"]["sla"] = {"window": "5s", "thresholds": thresholds or []}
    manifest["scenario"]["run"]["window"] = "5s"
    manifest["offered_rate"] = 60.0
    run_dir = store.create_run_dir(root, run_id)
    store.write_table(run_dir, "requests", table)
    t0 = manifest["load_start_ns"]
    n_windows = -(-(manifest["load_end_ns"] - t0) // 5_000_000_000)
    rows = windows.compute(table, run_id, t0, 5.0, n_windows)
    store.write_table(run_dir, "windows", pa.Table.from_pylist(rows, schema=schema.schema("windows", final=False)))
    store.write_json_atomic(run_dir / "manifest.json", manifest)
    return run_dir


def sections_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))


def table_rows(fragment: str) -> list[list[str]]:
    """Cells of every body row of the tables in ``fragment``, unescaped."""
    rows = []
    for body in re.findall(r"<tbody>(.*?)</tbody>", fragment, flags=re.S):
        for tr in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
            rows.append(
                [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr)]
            )
    return rows


def requests_of(run_dir: Path) -> dict[str, np.ndarray]:
    t = store.read_table(run_dir, "requests")
    return {c: np.asarray(t.column(c).cast(pa.string()) if c in ("node_id", "region", "cls", "outcome")
                          else t.column(c)) for c in t.column_names if c != "error"}  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    thresholds = ["p99<500ms", "p99{cls=risky}<1s", "share(latency<200ms){escalated=false}>=99%"]
    return synth(tmp_path_factory.mktemp("rep"), thresholds=thresholds)


@pytest.fixture(scope="module")
def page(run_dir):
    return single.build_report(run_dir, workers=0)


def test_every_new_section_is_there_with_the_harness_line(page):
    found = sections_of(page)
    assert list(found) == [a for a, _ in single.SECTIONS]
    for anchor in ("throughput", "latency", "distribution", "outcomes", "regions", "nodes"):
        assert "<img" in found[anchor], anchor
    assert '<p id="harness"' in found["summary"] and "harness: not judged" in found["summary"]


def test_throughput_per_second_is_the_count_of_completions_per_second(run_dir):
    run = load(run_dir)
    b, per_s = timeline.throughput_series(run)
    ends = requests_of(run_dir)["ts_end_ns"]
    k = (ends - run.t0_ns) // 1_000_000_000
    counts = np.bincount(k, minlength=b.n)
    assert b.bucket_s == 1.0 and b.n == counts.size
    assert per_s.tolist() == counts.astype(float).tolist()
    assert int(per_s.sum()) == ends.size  # every request in exactly one second


def test_latency_p50_p99_per_second_are_exact_percentiles(run_dir):
    run = load(run_dir)
    b, ps = timeline.latency_series(run)
    req = requests_of(run_dir)
    k = (req["ts_end_ns"] - run.t0_ns) // 1_000_000_000
    for i in range(b.n):
        x = req["latency_ms"][k == i]
        for q in (50.0, 99.0):
            assert (np.isnan(ps[q][i]) and x.size == 0) or ps[q][i] == percentile(x, q)


def test_percentile_distribution_table_equals_judge_stats(page, run_dir):
    req = requests_of(run_dir)
    measured = ~req["warmup"]
    lat, cls = req["latency_ms"][measured], req["cls"][measured]
    rows = {r[0]: r for r in table_rows(sections_of(page)["distribution"])}
    for name in ("all", "safe", "risky", "complex"):
        x = lat if name == "all" else lat[cls == name]
        expected = [name, f"{x.size:,}", *(format_ms(percentile(x, q)) for q in (50, 90, 99, 99.9, 99.99)),
                    format_ms(x.max())]  # fmt: skip
        assert rows[name] == expected


def test_per_node_and_region_tables_equal_recomputed_values(page, run_dir):
    req = requests_of(run_dir)
    manifest = store.load_manifest(run_dir)
    span = (manifest["load_end_ns"] - manifest["load_start_ns"]) / 1e9 - 5.0  # minus the 5 s warm-up
    measured = ~req["warmup"]
    for anchor, col, names in (("nodes", "node_id", NODES), ("regions", "region", REGIONS)):
        rows = {r[0]: r for r in table_rows(sections_of(page)[anchor])}
        assert set(rows) == set(names)
        for name in names:
            m = measured & (req[col] == name)
            lat = req["latency_ms"][m]
            bad = np.isin(req["outcome"][m], ["error", "timeout"]).mean()
            assert rows[name] == [name, f"{m.sum():,}", num(m.sum() / span), format_ms(percentile(lat, 50)),
                                  format_ms(percentile(lat, 99)), pct(bad)]  # fmt: skip


def test_outcomes_by_class_table_counts_every_pair(page, run_dir):
    req = requests_of(run_dir)
    measured = ~req["warmup"]
    body = sections_of(page)["outcomes"]
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", body).group(1)
    names = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<th[^>]*>(.*?)</th>", header)]
    outcomes = names[2:-1]
    assert outcomes == [o for o in ("ok", "denied", "error", "timeout") if (req["outcome"][measured] == o).any()]
    rows = {r[0]: r for r in table_rows(body) if r[0] in ("safe", "risky", "complex", "all")}
    for name, row in rows.items():
        m = measured & ((req["cls"] == name) if name != "all" else True)
        assert row[1] == f"{m.sum():,}"
        assert row[2:-1] == [f"{(m & (req['outcome'] == o)).sum():,}" for o in outcomes]
    assert "synthetic error" in body  # the most frequent error messages


def test_sla_lines_only_on_the_plot_of_their_metric_and_scope(run_dir, monkeypatch):
    drawn: dict[str, list[str]] = {}

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            drawn[name] = [line[1] for line in kwargs.get("sla_lines", args[1] if name == "window" else ())]
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(plots_load, "latency_per_second", spy("second", plots_load.latency_per_second))
    monkeypatch.setattr(plots, "latency_over_time", spy("window", plots.latency_over_time))
    cdf_points: list[Any] = []
    real_cdf = plots.cdf
    monkeypatch.setattr(plots, "cdf", lambda s, points=(), **kw: cdf_points.extend(points) or real_cdf(s, points, **kw))
    single.build_report(run_dir, workers=0)
    # all-requests p99 per second: only the all-requests p99 threshold
    assert drawn["second"] == ["p99<500ms"]
    # per window: p99 of all and of each class are drawn, so both p99 thresholds, never the share one
    assert sorted(drawn["window"]) == ["p99<500ms", "p99{cls=risky}<1s"]
    # the share threshold is of scope escalated=false: no CDF curve has that scope
    assert cdf_points == []


def test_a_scoped_threshold_is_not_drawn_on_all_requests(tmp_path, monkeypatch):
    run = synth(tmp_path, thresholds=["p99{cls=risky}<1s", "share(latency<200ms){escalated=false}>=99%"])
    seen: list[Any] = []
    real = plots_load.latency_per_second
    monkeypatch.setattr(plots_load, "latency_per_second", lambda *a, **k: seen.append(k["sla_lines"]) or real(*a, **k))
    found = sections_of(single.build_report(run, workers=0))
    assert seen == [[]]
    assert "No SLA threshold is on the p50 or p99 of all requests" in found["latency"]


def test_no_lease_conflicts_is_a_sentence_and_conflicts_a_chart(tmp_path, page):
    quiet = sections_of(single.build_report(synth(tmp_path, "quiet", conflicts=False), workers=0))["contention"]
    assert "no lease conflicts" in quiet and "<img" not in quiet
    busy = sections_of(page)["contention"]
    assert "no lease conflicts" not in busy and "<img" in busy


def test_only_ok_outcomes_are_a_sentence_not_a_chart(tmp_path):
    found = sections_of(single.build_report(synth(tmp_path, "allok", outcomes=False), workers=0))
    assert "Every request ended ok" in found["outcomes"] and "<img" not in found["outcomes"]
    assert "No events were recorded" in found["events"] or "events.arrow is not in" in found["events"]
    assert "<img" not in found["events"]


def capture(monkeypatch) -> list[Any]:
    figs: list[Any] = []
    monkeypatch.setattr(plots, "_png", lambda fig: figs.append(fig) or b"")
    monkeypatch.setattr(plots_load, "_png", lambda fig: figs.append(fig) or b"")
    return figs


def test_queue_waits_under_a_millisecond_are_drawn_in_microseconds(monkeypatch):
    figs = capture(monkeypatch)
    waits = np.array([0.0015, 0.004, 0.0066])
    plots.escalation_queue(np.array([1.0, 2.0, 3.0]), waits, (np.array([0.0]), np.array([5.0])), np.array([0.006]),
                           np.array([3.0]), warmup_s=0.0)  # fmt: skip
    ax = figs[0].axes[0]
    assert ax.get_ylabel() == "expert queue wait (µs)"
    assert ax.collections[0].get_offsets()[:, 1].tolist() == pytest.approx((waits * 1000).tolist())
    assert plots.time_unit(np.array([0.5, 2.0])) == (1.0, "ms")


def test_cdf_legend_is_outside_the_curves(monkeypatch):
    figs = capture(monkeypatch)
    v = np.sort(np.random.default_rng(0).lognormal(3, 1, 500))
    plots.cdf({"all (n=500)": v, "safe (n=300)": v[:300]}, [(100.0, 0.9, "share(latency<100ms)>=90%", "black")])
    fig = figs[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= frame.x1  # right of the axes: over no curve


def test_each_process_has_its_own_colour(monkeypatch):
    figs = capture(monkeypatch)
    t = np.arange(5.0)
    series = [("host pid 1", t, t, t), ("host pid 2", t, t + 1, t), ("shard pid 3", t, t + 2, t)]
    plots.resources(series, warmup_s=0.0)
    colours = [line.get_color() for line in figs[0].axes[0].lines]
    assert len(colours) == 3 and len(set(colours)) == 3


def test_figures_rendered_by_workers_are_the_same_bytes(run_dir):
    assert single.build_report(run_dir, workers=2) == single.build_report(run_dir, workers=0)


@pytest.mark.slow
def test_a_million_request_run_reports(tmp_path):
    run = synth(tmp_path, "big", windows=100, rate=2000.0)
    assert store.read_table(run, "requests").num_rows > 1_000_000
    found = sections_of(single.build_report(run))
    assert list(found) == [a for a, _ in single.SECTIONS]
    assert found["throughput"].count("<img") == 1


def test_comparison_draws_only_the_current_runs_all_request_thresholds(run_dir, tmp_path, monkeypatch):
    from raybench.report.comparison import build_comparison

    cur = synth(tmp_path, "cur", seed=6, thresholds=["p99<500ms", "p99{cls=risky}<1s", "share(latency<100ms)>=90%"])
    lines: list[Any] = []
    points: list[Any] = []
    real_lat, real_cdf = plots.latency_over_time, plots.cdf
    monkeypatch.setattr(plots, "latency_over_time", lambda s, sla=(), **k: lines.extend(sla) or real_lat(s, sla, **k))
    monkeypatch.setattr(plots, "cdf", lambda s, pts=(), **k: points.extend(pts) or real_cdf(s, pts, **k))
    build_comparison(run_dir, cur)
    assert [line[1] for line in lines] == ["p99<500ms"]
    assert [p[2] for p in points] == ["share(latency<100ms)>=90%"]
