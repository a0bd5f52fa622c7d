"""HTML report of a run folder (``build_report``); two side by side is :mod:`raybench.report.comparison`.

Contract:

* The result is one self-contained HTML string: inline CSS, every figure an inline base64 PNG
  ``<img>`` drawn by :mod:`raybench.report.plots` and :mod:`raybench.report.plots_load`
  (matplotlib, Agg); no script, no external resource.
* Every number shown is computed here from the run folder's files (manifest.json and the Arrow
  tables); percentiles are exact nearest-rank (:mod:`raybench.judge.stats`), the only method raybench uses.
  Statistics leave out warm-up requests; time-series figures show them, over a shaded warm-up span.
* A table the run folder lacks (``sla.arrow`` and ``fuse_ops.arrow`` are optional) or that has no
  rows gives a note in its section, never an error; a chart with nothing to show (no lease
  conflict, no outcome but ok, no event) is a sentence, never empty axes.
* An SLA threshold is drawn only on a figure of exactly its metric and scope
  (:mod:`raybench.report.marks`).
* All text from the files is HTML-escaped.
* Figures are drawn from aggregates (per second, per window, a quantile grid), never one point per
  request, and every aggregate is vectorised (:mod:`raybench.report.series`): a 1,000,000-request run
  reports in seconds (docs/performance.md, "Report speed"). For such a run the figures are
  rendered by worker processes (:mod:`raybench.report.render`).

Sections live in their modules: the load over time in :mod:`~raybench.report.timeline`, the
latency distribution in :mod:`~raybench.report.distribution`, per region and node in
:mod:`~raybench.report.breakdown`, the rest here.

Raises :class:`~raybench.errors.ResultsError` for an unreadable run folder and
:class:`~raybench.errors.UsageError` when matplotlib (the ``report`` extra) is missing.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np

from raybench.judge.stats import percentiles, summarize
from raybench.report import plots
from raybench.report.breakdown import section_nodes, section_regions
from raybench.report.data import STAGES, RunData, histogram_bins, load, per_window, stage_sums, thin
from raybench.report.distribution import section_cdf, section_distribution
from raybench.report.html import format_ms, img, kv, mib, note, num, page, pct, table
from raybench.report.marks import percentile_marks
from raybench.report.overview import SUMMARY_HEADER, facts, harness_html, sla_html, summary_rows
from raybench.report.render import default_workers, figure, rendering
from raybench.report.timeline import section_latency, section_outcomes, section_throughput

#: (anchor, heading) of every section of a single-run report, in order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary and SLA"),
    ("throughput", "Throughput over time"),
    ("latency", "Latency over time"),
    ("distribution", "Latency percentile distribution"),
    ("cdf", "Latency CDF per class"),
    ("outcomes", "Outcomes and errors"),
    ("regions", "Per region"),
    ("nodes", "Per node"),
    ("stages", "Where the time goes"),
    ("escalation", "Escalation queue"),
    ("contention", "Lease contention"),
    ("fuse", "FUSE vs native per operation"),
    ("resources", "Resource use per process"),
    ("events", "Events timeline"),
)
#: Longest events table and detail text shown.
MAX_EVENTS, MAX_DETAIL = 200, 300
HOT_KEYS = 10
#: Size of requests.arrow from which the figures are rendered in worker processes (when there
#: are cores): about 200,000 requests.
PARALLEL_BYTES = 20 * 2**20
#: Most escalated requests drawn one by one (a larger run draws an evenly spaced sample of them).
MAX_POINTS = 5000


def section_summary(run: RunData) -> str:
    """Key facts, the summary table (manifest ``summary``, or recomputed) and the SLA table."""
    legend = note(
        "coord = lease wait + state operation + event append; lag = the harness's own scheduling "
        "delay; timing err = measured − modelled think time (the harness's timing error)."
    )
    if not run.summary:
        return "\n".join([harness_html(run), kv(facts(run)), note("No requests in this run folder."), sla_html(run)])
    return "\n".join(
        [harness_html(run), kv(facts(run)), table(SUMMARY_HEADER, summary_rows(run)), legend, sla_html(run)]
    )


def section_stages(run: RunData) -> str:
    """Mean time per stage per request, per class (stacked bars and a table)."""
    lat = run.measured_col("latency_ms")
    if lat.size == 0:
        return note("No non-warm-up requests: nothing to break down.")
    labels, codes = run.measured_codes("cls")
    groups = ["all", *run.classes]
    # group i + 1: class i; group 0: rows of no listed class (they count in "all" only)
    remap = np.array([run.classes.index(c) + 1 if c in run.classes else 0 for c in labels], dtype=np.int64)
    by_cls = np.where(codes >= 0, remap[np.clip(codes, 0, None)], 0) if remap.size else np.zeros(lat.size, np.int64)
    sums, ran, rows_n = stage_sums(run, by_cls, len(groups))
    sums[0], ran[0], rows_n[0] = sums.sum(axis=0), ran.sum(axis=0), rows_n.sum()
    mu_cls, ran_cls = sums / rows_n[:, None], ran / rows_n[:, None]
    means = np.nan_to_num(mu_cls)
    lat_sums = np.bincount(by_cls, weights=lat, minlength=len(groups))
    totals = [float(lat.mean()), *(lat_sums[1:] / rows_n[1:])]
    cells = [
        [f"{format_ms(a)} ({num(r * 100, '{:.0f}%')})" for a, r in zip(mu_cls[i], ran_cls[i], strict=True)]
        for i in range(len(groups))
    ]
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
            img(figure(plots.stage_bars, groups, STAGES, means, np.array(totals)), "mean time per stage per class"),
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
    shown = thin(t.size, MAX_POINTS, keep=wait[esc_all])
    marks = [(m.value, m.label, "C3") for m in percentile_marks(run.thresholds, 99.0, stage="expert_queue")]
    png = figure(
        plots.escalation_queue,
        t[shown],
        wait[esc_all][shown],
        (ws, we),
        win_p99,
        np.nan_to_num(win_n),
        warmup_s=run.warmup_s,
        sla_lines=marks,
    )
    q = summarize(wait[measured][~np.isnan(wait[measured])])
    e = summarize(run.all_col("expert_ms")[measured])
    pool = run.manifest.get("experts") or {}
    rows = [
        ["escalated requests (non-warm-up)", f"{int(measured.sum()):,} of {int((~run.all_bool('warmup')).sum()):,}"],
        ["queue wait p50 / p99 / max", f"{format_ms(q['p50'])} / {format_ms(q['p99'])} / {format_ms(q['max'])}"],
        ["expert time p50 / p99", f"{format_ms(e['p50'])} / {format_ms(e['p99'])}"],
        ["pool capacity / longest queue", f"{pool.get('capacity', '-')} / {pool.get('max_queue', '-')}"],
    ]
    all_drawn = shown.size == t.size
    drawn = "every escalated request" if all_drawn else f"{shown.size:,} of the {t.size:,} escalated requests"
    return "\n".join(
        [
            img(png, "expert queue wait over time"),
            kv(rows),
            note(
                f"Left: {drawn} (warm-up included, shaded) at its start"
                + ("" if all_drawn else ", evenly spaced in time, the longest waits always among them")
                + "; red: exact p99 of the wait per window (non-warm-up, by end time)"
                + ("; dashed: the SLA threshold on that p99." if marks else ".")
            ),
        ]
    )


def section_contention(run: RunData) -> str:
    """Lease conflicts and lease-wait p99 per window; the hottest keys; per-shard counters. A run
    without a conflict gets that sentence, not empty axes."""
    keys = run.measured_col("file_key")
    if np.isnan(keys).all():
        return note("No request took a lease (no file_key recorded).")
    measured = ~run.all_bool("warmup")
    end = run.all_col("ts_end_ns", np.int64)[measured]
    conflicts = run.all_col("conflicts")[measured]
    wait = run.measured_col("lease_wait_ms")
    ok = ~np.isnan(keys)
    uniq, inv = np.unique(keys[ok].astype(np.int64), return_inverse=True)
    sums = np.bincount(inv, weights=conflicts[ok], minlength=uniq.size)
    counts = np.bincount(inv, minlength=uniq.size)
    order = np.lexsort((uniq, -counts, -sums))[:HOT_KEYS]
    wait_ok = wait[ok]
    rows = [[str(uniq[i]), f"{counts[i]:,}", f"{sums[i]:,.0f}", format_ms(_p99(wait_ok[inv == i]))] for i in order]
    parts = []
    total = float(np.nansum(conflicts))
    if total > 0:
        ws, we, win_c = per_window(run, end, conflicts, "sum")
        _, _, win_w = per_window(run, end, run.all_col("lease_wait_ms")[measured], "p99")
        marks = [(m.value, m.label, "C3") for m in percentile_marks(run.thresholds, 99.0, stage="lease_wait")]
        keys_drawn = [str(uniq[i]) for i in order]
        png = figure(
            plots.contention,
            (ws, we),
            np.nan_to_num(win_c),
            win_w,
            keys_drawn,
            sums[order],
            warmup_s=run.warmup_s,
            sla_lines=marks,
        )
        parts.append(img(png, "lease contention per window and hottest keys"))
    else:
        p99 = _p99(wait)
        parts.append(
            note(
                f"This run had no lease conflicts: each of the {int(ok.sum()):,} non-warm-up requests that took a "
                f"lease got it at its first request (lease wait p99 {format_ms(p99)}), so there is no chart."
            )
        )
    parts.append(table(("file key", "requests", "conflicts", "lease wait p99"), rows))
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
                img(figure(plots.fuse_ops, names, stats), "FUSE vs native latency per operation"),
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
                figure(
                    plots.histogram, *histogram_bins(fuse), "fuse_ms: the request's file operation through FUSE (ms)"
                ),
                "fuse_ms distribution",
            ),
            table(
                ("requests", "mean", "p50", "p90", "p99", "max"),
                [[f"{int(s['count']):,}", *(format_ms(s[k]) for k in ("mean", "p50", "p90", "p99", "max"))]],
            ),
        ]
    )


def section_resources(run: RunData) -> str:
    """RSS and CPU per process over time, one colour per process; per-role table."""
    from raybench.judge.summary import resource_growth

    if run.resources is None or run.resources.num_rows == 0:
        return note("resources.arrow is missing or empty: no resource samples.")
    r = run.resources
    role, node, pid = r.strings("role"), r.strings("node_id"), r.ints("pid")
    ts, rss, cpu = r.ints("ts_ns"), r.floats("rss_bytes") / 2**20, r.floats("cpu_percent")
    procs = sorted(set(zip(role.tolist(), node.tolist(), pid.tolist(), strict=True)))
    many_nodes = len({p[1] for p in procs}) > 1
    series = []
    for key in procs:
        m = (role == key[0]) & (node == key[1]) & (pid == key[2])
        o = np.argsort(ts[m])
        label = f"{key[0]} pid {key[2]}" + (f" on {str(key[1])[:8]}" if many_nodes else "")
        series.append((label, (ts[m][o] - run.t0_ns) / 1e9, rss[m][o], cpu[m][o]))
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
            img(figure(plots.resources, series, warmup_s=run.warmup_s), "RSS and CPU per process"),
            table(("role", "processes", "peak RSS", "RSS growth", "CPU mean", "CPU peak"), rows),
            note(
                "One colour per process. RSS growth: mean of the last quarter of a process's samples over "
                "the first quarter, worst process of the role."
            ),
        ]
    )


def section_events(run: RunData) -> str:
    """Events on a timeline (one row per kind) and as a table; a sentence when there are none."""
    ev = run.events
    end_s = run.duration_s
    if ev is None or ev.num_rows == 0:
        why = "events.arrow is not in this run folder" if ev is None else "No events were recorded"
        return note(f"{why} (violations, alerts, rollbacks, aborts, restarts, faults, FUSE errors): no timeline.")
    kind, t = ev.strings("kind"), (ev.ints("ts_ns") - run.t0_ns) / 1e9
    detail = ev.strings("detail")
    kinds = sorted(set(kind.tolist()))
    order = np.argsort(t, kind="stable")
    rows = [[f"{t[i]:.2f}s", kind[i], _short(detail[i])] for i in order[:MAX_EVENTS]]
    parts = [
        img(figure(plots.events, kinds, t, kind.tolist(), warmup_s=run.warmup_s, end_s=end_s), "events timeline"),
        table(("time", "kind", "detail"), rows, left=3),
    ]
    if ev.num_rows > MAX_EVENTS:
        parts.append(note(f"First {MAX_EVENTS} of {ev.num_rows:,} events listed."))
    return "\n".join(parts)


def _p99(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return percentiles(v, (99.0,))[99.0] if v.size else math.nan


def _short(detail: str) -> str:
    try:
        text = json.dumps(json.loads(detail), sort_keys=True)
    except (TypeError, ValueError):
        text = str(detail)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


_BUILDERS = {
    "summary": section_summary,
    "throughput": section_throughput,
    "latency": section_latency,
    "distribution": section_distribution,
    "cdf": section_cdf,
    "outcomes": section_outcomes,
    "regions": section_regions,
    "nodes": section_nodes,
    "stages": section_stages,
    "escalation": section_escalation,
    "contention": section_contention,
    "fuse": section_fuse,
    "resources": section_resources,
    "events": section_events,
}


def build_report(run_dir: Path, workers: int | None = None) -> str:
    """The HTML report of one run folder (see the module docstring for the contract).

    ``workers``: processes that render the figures (0: this one); by default, worker processes when
    requests.arrow has :data:`PARALLEL_BYTES` or more (about 200,000 requests), as many as there
    are cores up to 4 (:func:`raybench.report.render.default_workers`).
    """
    plots.require()
    run_dir = Path(run_dir)
    if workers is None:
        workers = default_workers(_requests_bytes(run_dir), PARALLEL_BYTES)
    # The workers fork before the tables are read (render: no other thread runs yet).
    with rendering(workers) as renderer:
        run = load(run_dir)
        bodies = {anchor: _BUILDERS[anchor](run) for anchor, _ in SECTIONS}
        return renderer.finish(page(f"raybench report: {run.run_id}", SECTIONS, bodies, ""))


def _requests_bytes(run_dir: Path) -> int:
    """Size of the requests table on disk (no Arrow read: the workers fork before any)."""
    for name in ("requests.arrow", "requests.arrows"):
        with contextlib.suppress(OSError):
            return (run_dir / name).stat().st_size
    return 0
