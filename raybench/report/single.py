"""HTML report of a run folder (``build_report``); two side by side is :mod:`raybench.report.comparison`.

Contract:

* The result is one self-contained HTML string: inline CSS, every figure an inline base64 PNG
  ``<img>`` drawn by :mod:`raybench.report.plots` (matplotlib, Agg); no script, no external resource.
* Every number shown is computed here from the run folder's files (manifest.json and the Arrow
  tables); percentiles are exact nearest-rank (:mod:`raybench.judge.stats`), the only method raybench uses.
  Statistics leave out warm-up requests; time-series figures show them, over a shaded warm-up span.
* A table the run folder lacks (``sla.arrow`` and ``fuse_ops.arrow`` are optional) or that has no
  rows gives a note in its section, never an error.
* All text from the files is HTML-escaped.

Raises :class:`~raybench.errors.ResultsError` for an unreadable run folder and
:class:`~raybench.errors.UsageError` when matplotlib (the ``report`` extra) is missing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from raybench.judge.stats import percentiles, summarize
from raybench.report import plots
from raybench.report.data import STAGES, RunData, cdf_points, load, per_window, sla_lines, stage_means, window_series
from raybench.report.html import format_ms, img, kv, mib, note, num, page, pct, table
from raybench.report.overview import SUMMARY_HEADER, facts, sla_html, summary_rows

#: (anchor, heading) of every section of a single-run report, in order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary and SLA"),
    ("latency", "Latency over time"),
    ("cdf", "Latency CDF per class"),
    ("stages", "Where the time goes"),
    ("escalation", "Escalation queue"),
    ("contention", "Lease contention"),
    ("fuse", "FUSE vs native per operation"),
    ("resources", "Resource use per process role"),
    ("events", "Events timeline"),
)
#: Longest events table and detail text shown.
MAX_EVENTS, MAX_DETAIL = 200, 300
HOT_KEYS = 10


def section_summary(run: RunData) -> str:
    """Key facts, the summary table (manifest ``summary``, or recomputed) and the SLA table."""
    legend = note(
        "coord = lease wait + state operation + event append; lag = the harness's own scheduling "
        "delay; timing err = measured − modelled think time (the harness's timing error)."
    )
    if not run.summary:
        return "\n".join([kv(facts(run)), note("No requests in this run folder."), sla_html(run)])
    return "\n".join([kv(facts(run)), table(SUMMARY_HEADER, summary_rows(run)), legend, sla_html(run)])


def section_latency(run: RunData) -> str:
    """p50 and p99 per window (windows.arrow scope=all), per-class p99, SLA lines."""
    if run.windows is None or run.windows.num_rows == 0:
        return note("windows.arrow is missing or empty: no per-window statistics to draw.")
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    styles: dict[str, dict[str, Any]] = {}
    for scope in ["all", *[f"cls={c}" for c in run.classes]]:
        s, e, w = window_series(run, scope)
        if s.size == 0:
            continue
        if scope == "all":
            series["p50 (all)"], series["p99 (all)"] = (s, e, w["p50_ms"]), (s, e, w["p99_ms"])
            styles["p50 (all)"], styles["p99 (all)"] = {"color": "C0", "lw": 2}, {"color": "C1", "lw": 2}
        else:
            series[f"p99 {scope}"] = (s, e, w["p99_ms"])
            styles[f"p99 {scope}"] = {"lw": 0.8, "ls": ":"}
    lines = sla_lines(run.thresholds)
    body = [
        img(
            plots.latency_over_time(series, lines, warmup_s=run.warmup_s, styles=styles),
            "latency p50 and p99 per window",
        )
    ]
    n = int((run.windows.strings("scope") == "all").sum())
    body.append(
        note(
            f"{n} windows of {run.window_s:g}s (from windows.arrow, scope all); each step is the "
            "window's exact percentile, held over the window's span. "
            + ("Dashed: SLA latency bounds from the scenario." if lines else "No latency SLA line to draw.")
        )
    )
    return "\n".join(body)


def section_cdf(run: RunData) -> str:
    """Empirical latency CDF per class, with the exact percentiles as a table."""
    lat = run.measured_col("latency_ms")
    if lat.size == 0:
        return note("No non-warm-up requests: nothing to draw.")
    cls = run.measured_str("cls")
    samples = {"all": lat, **{c: lat[cls == c] for c in run.classes}}
    rows = []
    for name, v in samples.items():
        s = summarize(v)
        rows.append(
            [name, f"{int(s['count']):,}", *(format_ms(s[k]) for k in ("mean", "p50", "p90", "p99", "p999", "max"))]
        )
    drawn = {k: cdf_points(v) for k, v in samples.items()}
    share_lines = [(ms, label) for ms, label in sla_lines(run.thresholds)]
    return "\n".join(
        [
            img(plots.cdf(drawn, share_lines, styles={"all": {"color": "black", "lw": 2}}), "latency CDF per class"),
            table(("class", "count", "mean", "p50", "p90", "p99", "p99.9", "max"), rows),
        ]
    )


def section_stages(run: RunData) -> str:
    """Mean time per stage per request, per class (stacked bars and a table)."""
    lat = run.measured_col("latency_ms")
    if lat.size == 0:
        return note("No non-warm-up requests: nothing to break down.")
    cls = run.measured_str("cls")
    groups = ["all", *run.classes]
    masks = [np.ones(lat.size, bool), *[cls == c for c in run.classes]]
    means = np.zeros((len(groups), len(STAGES)))
    cells: list[list[str]] = []
    totals = []
    for i, m in enumerate(masks):
        mu, ran = stage_means(run, m)
        means[i] = np.nan_to_num(mu)
        totals.append(float(lat[m].mean()))
        cells.append([f"{format_ms(a)} ({num(r * 100, '{:.0f}%')})" for a, r in zip(mu, ran, strict=True)])
    # Stages as rows, classes as columns: the table stays narrow however many stages there are.
    rows = [["mean latency", *(format_ms(t) for t in totals)]]
    rows += [[stage, *(c[j] for c in cells)] for j, stage in enumerate(STAGES)]
    parallel = bool((run.scenario.get("stages") or {}).get("parallel_review"))
    text = (
        "Mean ms per request of each measured stage (a stage that did not run counts 0; in brackets "
        "the share of requests in which it ran). The tick is the mean end-to-end latency; the rest is "
        "scheduling lag, modelled region round trips and the harness's own work."
    )
    if parallel:
        text += (
            " Policy check and LLM review run in parallel here (stages.parallel_review), so the bars can"
            " add up to more than the latency."
        )
    return "\n".join(
        [
            img(plots.stage_bars(groups, STAGES, means, np.array(totals)), "mean time per stage per class"),
            table(("stage", *groups), rows),
            note(text),
        ]
    )


def section_escalation(run: RunData) -> str:
    """Expert-queue wait of escalated requests over time, escalations per window, pool figures."""
    esc_all = run.all_bool("escalated")
    if not esc_all.any():
        return note("No request was escalated to the expert pool in this run.")
    ts = run.all_col("ts_start_ns", np.int64)
    wait = run.all_col("expert_queue_ms")
    t = (ts[esc_all] - run.t0_ns) / 1e9
    end = run.all_col("ts_end_ns", np.int64)
    measured = esc_all & ~run.all_bool("warmup")
    ws, we, win_p99 = per_window(run, end[measured], wait[measured], "p99")
    _, _, win_n = per_window(run, end[measured], np.ones(int(measured.sum())), "sum")
    png = plots.escalation_queue(t, wait[esc_all], (ws, we), win_p99, np.nan_to_num(win_n), warmup_s=run.warmup_s)
    q = summarize(wait[measured][~np.isnan(wait[measured])])
    e = summarize(run.all_col("expert_ms")[measured])
    pool = run.manifest.get("experts") or {}
    rows = [
        ["escalated requests (non-warm-up)", f"{int(measured.sum()):,} of {int((~run.all_bool('warmup')).sum()):,}"],
        ["queue wait p50 / p99 / max", f"{format_ms(q['p50'])} / {format_ms(q['p99'])} / {format_ms(q['max'])}"],
        ["expert time p50 / p99", f"{format_ms(e['p50'])} / {format_ms(e['p99'])}"],
        ["pool capacity / longest queue", f"{pool.get('capacity', '-')} / {pool.get('max_queue', '-')}"],
    ]
    return "\n".join(
        [
            img(png, "expert queue wait over time"),
            kv(rows),
            note(
                "Left: every escalated request (warm-up included, shaded) at its start; red: "
                "exact p99 of the wait per window (non-warm-up, by end time)."
            ),
        ]
    )


def section_contention(run: RunData) -> str:
    """Lease conflicts and lease-wait p99 per window; the hottest keys; per-shard counters."""
    keys = run.measured_col("file_key")
    if np.isnan(keys).all():
        return note("No request took a lease (no file_key recorded).")
    measured = ~run.all_bool("warmup")
    end = run.all_col("ts_end_ns", np.int64)[measured]
    conflicts = run.all_col("conflicts")[measured]
    ws, we, win_c = per_window(run, end, conflicts, "sum")
    _, _, win_w = per_window(run, end, run.all_col("lease_wait_ms")[measured], "p99")
    wait = run.measured_col("lease_wait_ms")
    ok = ~np.isnan(keys)
    uniq, inv = np.unique(keys[ok].astype(np.int64), return_inverse=True)
    sums = np.bincount(inv, weights=conflicts[ok], minlength=uniq.size)
    counts = np.bincount(inv, minlength=uniq.size)
    order = np.lexsort((uniq, -counts, -sums))[:HOT_KEYS]
    rows = []
    for i in order:
        w = wait[ok][inv == i]
        rows.append(
            [
                str(uniq[i]),
                f"{counts[i]:,}",
                f"{sums[i]:,.0f}",
                format_ms(percentiles(w[~np.isnan(w)], (99.0,))[99.0] if (~np.isnan(w)).any() else math.nan),
            ]
        )
    png = plots.contention(
        (ws, we), np.nan_to_num(win_c), win_w, [str(uniq[i]) for i in order], sums[order], warmup_s=run.warmup_s
    )
    shard_rows = [
        [
            s.get("shard", "?"),
            *(
                f"{s.get(k, 0):,}"
                for k in ("grants", "refusals", "expired_takeovers", "cas_ok", "cas_conflict", "lost_releases")
            ),
        ]
        for s in run.manifest.get("shards") or []
    ]
    parts = [
        img(png, "lease contention per window and hottest keys"),
        table(("file key", "requests", "conflicts", "lease wait p99"), rows),
    ]
    if shard_rows:
        parts.append(
            table(
                ("shard", "grants", "refusals", "expired takeovers", "CAS ok", "CAS conflict", "lost releases"),
                shard_rows,
            )
        )
    parts.append(
        note(
            f"{uniq.size:,} distinct keys leased by non-warm-up requests; conflicts = lease requests "
            "refused before the grant."
        )
    )
    return "\n".join(parts)


def section_fuse(run: RunData) -> str:
    """Per operation FUSE vs native from fuse_ops.arrow; else the requests' fuse_ms distribution."""
    if run.fuse_ops is not None and run.fuse_ops.num_rows:
        ops = run.fuse_ops
        op = ops.strings("op")
        target = ops.strings("target")
        lat = ops.floats("latency_us")
        good = ops.floats("ok").astype(bool)
        names = sorted(set(op.tolist()))
        targets = sorted(set(target.tolist()))
        stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for tg in targets:
            ps = [percentiles(lat[(op == o) & (target == tg) & good], (50.0, 99.0)) for o in names]
            stats[tg] = (np.array([p[50.0] for p in ps]), np.array([p[99.0] for p in ps]))
        rows = []
        for i, o in enumerate(names):
            for tg in targets:
                m = (op == o) & (target == tg)
                p50, p99 = stats[tg][0][i], stats[tg][1][i]
                ratio = p50 / stats["native"][0][i] if tg != "native" and "native" in stats else math.nan
                rows.append([o, tg, f"{int(m.sum()):,}", f"{int((m & ~good).sum()):,}", num(p50), num(p99),
                             num(ratio, "{:.1f}x")])  # fmt: skip
        header = ("op", "target", "count", "failed", "p50 µs", "p99 µs", "p50 vs native")
        return "\n".join(
            [
                img(plots.fuse_ops(names, stats), "FUSE vs native latency per operation"),
                table(header, rows, left=2),
                note("From fuse_ops.arrow; percentiles over the operations that succeeded."),
            ]
        )
    why = "fuse_ops.arrow is not in this run folder" if run.fuse_ops is None else "fuse_ops.arrow has no rows"
    fuse = run.measured_col("fuse_ms")
    fuse = fuse[~np.isnan(fuse)]
    if fuse.size == 0:
        reasons = [n.get("reason") for n in (run.manifest.get("fuse") or {}).get("nodes") or [] if n.get("reason")]
        reason = (
            (run.manifest.get("fuse") or {}).get("reason")
            or "; ".join(reasons)
            or "no request recorded a FUSE operation"
        )
        return note(f"{why}, and no request has a fuse_ms time ({reason}).")
    s = summarize(fuse)
    return "\n".join(
        [
            note(
                f"{why} (run `raybench fuse` for FUSE against native per operation); shown instead: the "
                "requests' own file operation on their node's FUSE mount (fuse_ms)."
            ),
            img(
                plots.histogram(fuse, "fuse_ms: the request's file operation through FUSE (ms)"), "fuse_ms distribution"
            ),
            table(
                ("requests", "mean", "p50", "p90", "p99", "max"),
                [[f"{int(s['count']):,}", *(format_ms(s[k]) for k in ("mean", "p50", "p90", "p99", "max"))]],
            ),
        ]
    )


def section_resources(run: RunData) -> str:
    """RSS and CPU per process over time, coloured by role; per-role table."""
    from raybench.judge.summary import resource_growth

    if run.resources is None or run.resources.num_rows == 0:
        return note("resources.arrow is missing or empty: no resource samples.")
    r = run.resources
    role, node, pid = r.strings("role"), r.strings("node_id"), r.floats("pid")
    ts, rss, cpu = r.ints("ts_ns"), r.floats("rss_bytes") / 2**20, r.floats("cpu_percent")
    roles = sorted(set(role.tolist()))
    series = []
    for key in sorted(set(zip(role.tolist(), node.tolist(), pid.tolist(), strict=True))):
        m = (role == key[0]) & (node == key[1]) & (pid == key[2])
        o = np.argsort(ts[m])
        series.append((key[0], (ts[m][o] - run.t0_ns) / 1e9, rss[m][o], cpu[m][o]))
    rows = [
        [
            g["role"],
            g["processes"],
            mib(g["peak_rss_mib"]),
            pct(g["rss_growth"]),
            num(g["cpu_mean"], "{:.0f}%"),
            num(g["cpu_peak"], "{:.0f}%"),
        ]
        for g in resource_growth(r.table)
    ]
    return "\n".join(
        [
            img(plots.resources(series, roles, warmup_s=run.warmup_s), "RSS and CPU per process"),
            table(("role", "processes", "peak RSS", "RSS growth", "CPU mean", "CPU peak"), rows),
            note(
                "RSS growth: mean of the last quarter of a process's samples over the first quarter, "
                "worst process of the role."
            ),
        ]
    )


def section_events(run: RunData) -> str:
    """Events on a timeline (one row per kind) and as a table."""
    ev = run.events
    end_s = run.duration_s
    if ev is None or ev.num_rows == 0:
        why = "events.arrow is not in this run folder" if ev is None else "No events were recorded"
        return "\n".join(
            [
                img(plots.events([], np.array([]), [], warmup_s=run.warmup_s, end_s=end_s), "events timeline"),
                note(f"{why} (violations, alerts, rollbacks, aborts, restarts, faults, FUSE errors)."),
            ]
        )
    kind, t = ev.strings("kind"), (ev.ints("ts_ns") - run.t0_ns) / 1e9
    detail = ev.strings("detail")
    kinds = sorted(set(kind.tolist()))
    order = np.argsort(t, kind="stable")
    rows = [[f"{t[i]:.2f}s", kind[i], _short(detail[i])] for i in order[:MAX_EVENTS]]
    parts = [
        img(plots.events(kinds, t, kind.tolist(), warmup_s=run.warmup_s, end_s=end_s), "events timeline"),
        table(("time", "kind", "detail"), rows, left=3),
    ]
    if ev.num_rows > MAX_EVENTS:
        parts.append(note(f"First {MAX_EVENTS} of {ev.num_rows:,} events listed."))
    return "\n".join(parts)


def _short(detail: str) -> str:
    try:
        text = json.dumps(json.loads(detail), sort_keys=True)
    except (TypeError, ValueError):
        text = str(detail)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


_BUILDERS = {
    "summary": section_summary,
    "latency": section_latency,
    "cdf": section_cdf,
    "stages": section_stages,
    "escalation": section_escalation,
    "contention": section_contention,
    "fuse": section_fuse,
    "resources": section_resources,
    "events": section_events,
}


def build_report(run_dir: Path) -> str:
    """The HTML report of one run folder (see the module docstring for the contract)."""
    plots.require()
    run = load(Path(run_dir))
    bodies = {anchor: _BUILDERS[anchor](run) for anchor, _ in SECTIONS}
    return page(f"raybench report: {run.run_id}", SECTIONS, bodies, "")
