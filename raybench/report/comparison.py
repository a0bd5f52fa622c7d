"""HTML comparison of two run folders (baseline vs current) side by side: ``build_comparison``.

Same contract as the single-run report (:mod:`raybench.report.single`): everything computed from
the two run folders' files, exact nearest-rank percentiles, escaped text, one inline PNG per
figure. The verdict table comes from :func:`raybench.judge.compare.compare_runs` (its defaults:
threshold, alpha, window, bootstrap), the code behind ``raybench compare``; if that comparison
cannot be made (no non-warm-up rows, an unreadable table) its section says why instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from raybench.errors import RaybenchError
from raybench.report import plots
from raybench.report.data import STAGES, RunData, cdf_points, load, stage_means, window_series
from raybench.report.html import esc, img, kv, note, page, table
from raybench.report.marks import percentile_marks, share_points
from raybench.report.overview import SUMMARY_HEADER, facts, sla_html, summary_rows

#: (anchor, heading) of every section of a comparison report, in order.
COMPARISON_SECTIONS: tuple[tuple[str, str], ...] = (
    ("runs", "The two runs"),
    ("verdicts", "Regressions and improvements"),
    ("latency", "Latency over time"),
    ("cdf", "Latency CDF"),
    ("stages", "Where the time goes"),
    ("resources", "Resource use per process role"),
    ("summaries", "Summaries side by side"),
)


def _two(base_html: str, cur_html: str, base: RunData, cur: RunData) -> str:
    """Two columns: baseline left, current right."""
    return (
        f'<div class="grid"><div><h3>baseline {esc(base.run_id)}</h3>{base_html}</div>'
        f"<div><h3>current {esc(cur.run_id)}</h3>{cur_html}</div></div>"
    )


def _runs(base: RunData, cur: RunData) -> str:
    from raybench.judge.compare import scenario_diff

    parts = [_two(kv(facts(base)), kv(facts(cur)), base, cur)]
    diff = scenario_diff(base.scenario, cur.scenario)
    if diff:
        parts.append(note(f"The runs are of different scenarios; what differs ({len(diff)}):"))
        parts.append("<ul>" + "".join(f"<li><code>{esc(d)}</code></li>" for d in diff) + "</ul>")
    else:
        parts.append(note("Same scenario (seed, name and run id aside)."))
    return "\n".join(parts)


def _change(x: float) -> str:
    if math.isnan(x):
        return "-"
    return "+inf%" if x == math.inf else ("-inf%" if x == -math.inf else f"{x * 100:+.1f}%")


def _verdicts(base: RunData, cur: RunData) -> str:
    from raybench.judge.compare import compare_runs
    from raybench.judge.compare_table import format_value

    try:
        comp = compare_runs(base.path, cur.path)
    except RaybenchError as exc:
        return note(f"No statistical comparison: {exc}")
    rows = []
    for r in comp.rows:
        if r.scope != "all" and r.verdict in ("same", "n/a"):
            continue
        ci = "-" if math.isnan(r.ci_low) else f"[{_change(r.ci_low)}, {_change(r.ci_high)}] ({r.ci_level:.4g})"
        p = "-" if math.isnan(r.p_adjusted) else f"{r.p_adjusted:.3g}"
        cls = {"regression": "fail", "inconclusive": "fail", "improvement": "pass"}.get(r.verdict)
        verdict: Any = ("html", f'<span class="{cls}">{esc(r.verdict)}</span>') if cls else r.verdict
        rows.append(
            [
                r.scope,
                r.metric,
                r.role,
                format_value(r.baseline, r.unit),
                format_value(r.current, r.unit),
                _change(r.change),
                ci,
                p,
                verdict,
            ]
        )
    cfg = comp.config
    header = ("scope", "metric", "role", "baseline", "current", "change", "interval (level)", "p (adj.)", "verdict")
    return "\n".join(
        [
            table(header, rows, left=2),
            note(
                f"{len(comp.regressions)} regression(s), {len(comp.improvements)} improvement(s) in the "
                f"primary metrics: {comp.outcome}. As `raybench compare`: threshold {cfg.threshold:.0%}, "
                f"alpha {cfg.alpha} over the primary metrics (Bonferroni), windows of {cfg.window_s:g}s, "
                f"{cfg.bootstrap} window-bootstrap replicates giving each interval and p-value; exploratory "
                "rows never decide. Per-class rows only where not 'same'."
            ),
        ]
    )


def _latency(base: RunData, cur: RunData) -> str:
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    styles: dict[str, dict[str, Any]] = {}
    for name, run, colour in (("baseline", base, plots.BASELINE), ("current", cur, plots.CURRENT)):
        s, e, w = window_series(run, "all")
        if s.size == 0:
            continue
        series[f"{name} p50"], styles[f"{name} p50"] = (s, e, w["p50_ms"]), {"color": colour, "ls": ":"}
        series[f"{name} p99"], styles[f"{name} p99"] = (s, e, w["p99_ms"]), {"color": colour, "lw": 2}
    if not series:
        return note("Neither run has per-window statistics (windows.arrow).")
    lines = []
    if "current p50" in series:
        lines += [(m.value, m.label, plots.CURRENT) for m in percentile_marks(cur.thresholds, 50.0)]
        lines += [(m.value, m.label, plots.CURRENT) for m in percentile_marks(cur.thresholds, 99.0)]
    png = plots.latency_over_time(series, lines, warmup_s=max(base.warmup_s, cur.warmup_s), styles=styles)
    return "\n".join(
        [
            img(png, "latency per window, baseline vs current"),
            note(
                "Each run's time counts from its own load start. "
                + (
                    "Dashed: the current run's SLA thresholds on the p50 or p99 of all requests."
                    if lines
                    else "No SLA threshold of the current run is on the p50 or p99 of all requests: none drawn."
                )
            ),
        ]
    )


def _cdf(base: RunData, cur: RunData) -> str:
    samples: dict[str, np.ndarray] = {}
    styles: dict[str, dict[str, Any]] = {}
    classes = list(dict.fromkeys([*cur.classes, *base.classes]))
    for name, run, ls in (("baseline", base, "--"), ("current", cur, "-")):
        for i, group in enumerate(["all", *classes]):
            v = run.sorted_latency(group) if group == "all" or group in run.classes else np.array([])
            if v.size:
                label = f"{name} {group} (n={v.size:,})"
                samples[label] = cdf_points(v)
                styles[label] = {"ls": ls, "color": "black" if group == "all" else f"C{i - 1}"}
    if not samples:
        return note("Neither run has non-warm-up requests.")
    points = []
    if cur.sorted_latency("all").size:
        wanted = share_points(cur.thresholds, ["all"])["all"]
        points = [(m.limit_ms or 0.0, m.value, m.label, "black") for m in wanted]
    parts = [img(plots.cdf(samples, points, styles=styles), "latency CDF, baseline vs current")]
    if points:
        parts.append(note("Markers: the current run's share(latency<X) thresholds on all requests."))
    return "\n".join(parts)


def _stages(base: RunData, cur: RunData) -> str:
    means = []
    for run in (base, cur):
        n = run.measured_col("latency_ms").size
        means.append(np.nan_to_num(stage_means(run, np.ones(n, bool))[0]) if n else np.zeros(len(STAGES)))
    png = plots.paired_bars(STAGES, means[0], means[1], "mean ms per request", ("baseline", "current"))
    rows = [[s, f"{b:.2f}", f"{c:.2f}"] for s, b, c in zip(STAGES, means[0], means[1], strict=True)]
    return "\n".join(
        [
            img(png, "mean time per stage, baseline vs current"),
            table(("stage", "baseline ms", "current ms"), rows),
            note("Mean ms per non-warm-up request of each stage (a stage that did not run counts 0)."),
        ]
    )


def _resources(base: RunData, cur: RunData) -> str:
    from raybench.judge.summary import resource_growth

    per = [
        {g["role"]: g for g in resource_growth(r.resources.table)} if r.resources is not None else {}
        for r in (base, cur)
    ]
    roles = sorted(set(per[0]) | set(per[1]))
    if not roles:
        return note("Neither run has resource samples (resources.arrow).")

    def values(key: str, i: int) -> np.ndarray:
        return np.array([per[i][r][key] if r in per[i] else math.nan for r in roles], dtype=np.float64)

    names = ("baseline", "current")
    rss = plots.paired_bars(roles, values("peak_rss_mib", 0), values("peak_rss_mib", 1), "peak RSS (MiB)", names)
    cpu = plots.paired_bars(roles, values("cpu_mean", 0), values("cpu_mean", 1), "mean CPU (% of one core)", names)
    return img(rss, "peak RSS per role") + "\n" + img(cpu, "mean CPU per role")


def _summaries(base: RunData, cur: RunData) -> str:
    parts = []
    for name, run in (("baseline", base), ("current", cur)):
        parts.append(f"<h3>{esc(name)} {esc(run.run_id)}</h3>")
        parts.append(table(SUMMARY_HEADER, summary_rows(run)))
        parts.append(sla_html(run))
    return "\n".join(parts)


def comparison_bodies(base: RunData, cur: RunData) -> dict[str, str]:
    """The HTML body of every section of :data:`COMPARISON_SECTIONS`, by anchor."""
    return {
        "runs": _runs(base, cur),
        "verdicts": _verdicts(base, cur),
        "latency": _latency(base, cur),
        "cdf": _cdf(base, cur),
        "stages": _stages(base, cur),
        "resources": _resources(base, cur),
        "summaries": _summaries(base, cur),
    }


def build_comparison(base_dir: Path, cur_dir: Path) -> str:
    """The HTML comparison of a baseline and a current run folder, side by side."""
    plots.require()
    base, cur = load(Path(base_dir)), load(Path(cur_dir))
    bodies = comparison_bodies(base, cur)
    return page(
        f"raybench comparison: {base.run_id} (baseline) vs {cur.run_id} (current)", COMPARISON_SECTIONS, bodies, ""
    )
