"""What both reports show of one run: its key facts, the summary table and the SLA verdicts.

Used by the single-run report (:mod:`raybench.report.single`) and, once per run, by the comparison
(:mod:`raybench.report.comparison`).
"""

from __future__ import annotations

import math
from typing import Any

from raybench.judge.harness import format_harness
from raybench.report.data import RunData
from raybench.report.html import esc, format_ms, note, num, pct, table


def facts(run: RunData) -> list[tuple[str, Any]]:
    """The run's key facts as (label, value) pairs: scenario, status, times, load, harness."""
    m, sc = run.manifest, run.scenario
    recorded = run.requests.num_rows
    facts: list[tuple[str, Any]] = [
        ("run", m.get("run_id", run.path.name)),
        ("scenario", f"{sc.get('name', '?')}: {sc.get('description', '')}".rstrip(": ")),
        ("status", m.get("status", "?") + (f" ({m['error']})" if m.get("error") else "")),
        ("started / ended (UTC)", f"{m.get('started_utc', '?')} / {m.get('ended_utc', '?')}"),
        ("agents", num((sc.get("run") or {}).get("agents"), "{:,}")),
        ("duration / warm-up / window", f"{run.duration_s:g}s / {run.warmup_s:g}s / {run.window_s:g}s"),
        ("offered load", f"{num(m.get('offered_rate'))} req/s"),
        ("requests recorded / expected", f"{recorded:,} / {num(m.get('expected_requests'), '{:,.0f}')}"),
        ("arrivals", "closed loop (hides queueing)" if m.get("closed_loop") else "open loop"),
        ("nodes", num(len((m.get("cluster") or {}).get("nodes") or []), "{:,}")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())),
        ("harness", format_harness(m.get("harness")).removeprefix("harness: ")),
    ]
    return facts


def harness_html(run: RunData) -> str:
    """The harness health line (:func:`raybench.judge.harness.format_harness`) on its own, marked
    when the harness was saturated (its own delay is then in the figures)."""
    section = run.manifest.get("harness")
    line = format_harness(section)
    saturated = isinstance(section, dict) and section.get("status") == "saturated"
    cls = "fail" if saturated else ("pass" if isinstance(section, dict) else "")
    return f'<p id="harness" class="{cls}">{esc(line)}</p>'


def summary_rows(run: RunData) -> list[list[str]]:
    """The end-of-run summary (manifest ``summary``, or recomputed), one row per scope, as text
    cells under :data:`SUMMARY_HEADER`."""
    rows = []
    for r in run.summary:
        rows.append(
            [
                r["scope"],
                num(r.get("count"), "{:,.0f}"),
                num(r.get("throughput")),
                *(format_ms(r.get(k)) for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")),
                pct(r.get("error_rate")),
                pct(r.get("escalation_rate")),
                num(r.get("conflicts"), "{:,.0f}"),
                format_ms(r.get("coord_p99_ms")),
                format_ms(r.get("lag_p99_ms")),
                format_ms(r.get("timing_err_p99_ms")),
            ]
        )
    return rows


#: Header of :func:`summary_rows`' table.
SUMMARY_HEADER = (
    "scope",
    "count",
    "req/s",
    "mean",
    "p50",
    "p95",
    "p99",
    "max",
    "errors",
    "escalated",
    "conflicts",
    "coord p99",
    "lag p99",
    "timing err p99",
)


def _sla_value(expr: str, value: Any) -> str:
    from raybench.judge.grammar import parse_threshold

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        th = parse_threshold(expr)
    except Exception:
        return num(value, "{:.4g}")
    if th.metric in ("percentile", "mean", "min", "max"):
        return format_ms(value)
    if th.metric == "throughput" and not th.relative:
        return f"{value:.1f}/s"
    return pct(value)


def sla_html(run: RunData) -> str:
    """The SLA verdict table from sla.arrow, or a note saying why there is none."""
    if run.sla is None:
        listed = "; ".join(run.thresholds) if run.thresholds else "none"
        return note(
            f"No sla.arrow in this run folder, so no verdicts here. Thresholds recorded for "
            f"the run: {listed}. `raybench sla RUN --write` evaluates them from the files."
        )
    if run.sla.num_rows == 0:
        return note("sla.arrow has no rows: the run had no SLA thresholds.")
    rows = []
    for r in run.sla.to_pylist():
        if r["observed"] is None:
            verdict: Any = ("html", '<span class="fail">NO DATA</span>')
        else:
            verdict = ("html", '<span class="pass">pass</span>' if r["passed"] else '<span class="fail">FAIL</span>')
        first = "-" if r["first_violation_ns"] is None else f"{(r['first_violation_ns'] - run.t0_ns) / 1e9:.1f}s"
        rows.append(
            [
                r["expression"],
                r["scope"],
                _sla_value(r["expression"], r["observed"]),
                _sla_value(r["expression"], r["target"]),
                verdict,
                f"{r['windows_failed']}/{r['windows_total']}",
                first,
            ]
        )
    header = ("threshold", "scope", "observed", "target", "verdict", "windows failed", "first violation")
    return table(header, rows, left=2)
